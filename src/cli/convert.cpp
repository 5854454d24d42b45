// shrink convert MODEL -o OUT [--dtype f32|f16|bf16] — rewrite a model in another
// format (OUT.gguf -> GGUF, otherwise a Hugging Face directory) and/or dtype.
#include <cstdio>

#include "cli/commands.h"
#include "core/cpu.h"
#include "core/error.h"

namespace shrink::cli {

namespace {
struct ConvertArgs {
  ModelArgs m;
  std::string out, dtype;
};

// Matrices (2-D) take the requested dtype; 1-D tensors (norms, biases) stay f32,
// as llama.cpp keeps them.
void convert_tensors(ModelFile& f, DType dt) {
  for (auto& [name, t] : f.tensors) {
    const DType target = t.ndim() >= 2 ? dt : DType::F32;
    if (t.dtype != target) t = t.to(target);
  }
}

void run_convert(const ConvertArgs& a) {
  const double t0 = now_seconds();
  ModelFile f = open_model(a.m, false);
  const bool gguf = a.out.size() > 5 && a.out.substr(a.out.size() - 5) == ".gguf";
  DType dt = DType::F32;
  if (!a.dtype.empty()) {
    dt = parse_dtype(a.dtype);
    SHRINK_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, "--dtype must be f32, f16 or bf16");
    convert_tensors(f, dt);
  }
  if (gguf)
    save_gguf_model(f, a.out);
  else
    save_hf(f, a.out, dt);
  std::fprintf(stderr, "convert: %s (%s) -> %s (%s) in %.1f s\n", a.m.model.c_str(), f.format.c_str(), a.out.c_str(),
               gguf ? "gguf" : "hf", now_seconds() - t0);
}
}  // namespace

void add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "Rewrite a model as GGUF (OUT.gguf) or a Hugging Face directory, optionally "
                                            "in another dtype");
  add_model_args(cmd, a->m);
  cmd->add_option("-o,--output", a->out, "Output: FILE.gguf, or a directory for Hugging Face safetensors")->required();
  cmd->add_option("--dtype", a->dtype, "Weight type of matrices: f32, f16, bf16 (default: keep; HF output: f32)");
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace shrink::cli
