// shrink convert MODEL -o OUT [--dtype f32|f16|bf16] [--sparse N:M|mask] — rewrite a model
// in another format (OUT.gguf -> GGUF, otherwise a Hugging Face directory) and/or
// dtype; --sparse stores a pruned model's block Linears compressed (GGUF): N:M
// (model/sparse_weight.h) or, for unstructured sparsity, bitmask (model/sparse_mask_weight.h).
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "core/cpu.h"
#include "core/error.h"
#include "model/sparse_mask_weight.h"
#include "model/sparse_weight.h"
#include "model/transformer.h"

namespace shrink::cli {

namespace {
struct ConvertArgs {
  ModelArgs m;
  std::string out, dtype, sparse;
};

// The block Linears of f compressed to N:M (model/sparse_weight.h) or bitmask
// ("mask": those with at least kMaskMinSparsity zeros), written back into f.
void compress_sparse(ModelFile& f, const std::string& pattern) {
  if (pattern == "mask") {
    Transformer model(f);
    const int total = int(model.linears().size()) - 1, count = compress_model_mask(model);
    SHRINK_CHECK(count > 0, "--sparse mask: no block Linear has ", int(kMaskMinSparsity * 100),
                 "% or more zeros (prune it first, e.g. shrink prune --sparsity 0.7)");
    model.export_to(f);
    std::fprintf(stderr, "convert: %d of %d block Linears stored as bitmask f32 (the rest have under %d%% zeros: dense)\n",
                 count, total, int(kMaskMinSparsity * 100));
    return;
  }
  int n = 0, m = 0;
  char colon = 0;
  std::istringstream in(pattern);
  SHRINK_CHECK((in >> n >> colon >> m) && colon == ':' && in.peek() == EOF, "--sparse wants N:M such as 2:4 or mask, got '",
               pattern, "'");
  Transformer model(f);
  const int count = compress_model_nm(model, n, m);
  model.export_to(f);
  std::fprintf(stderr, "convert: %d block Linears stored %d:%d compressed\n", count, n, m);
}

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
  if (!a.sparse.empty()) {
    SHRINK_CHECK(gguf, "--sparse writes shrink's compressed sparse convention, which exists in GGUF only: give -o FILE.gguf");
    compress_sparse(f, a.sparse);
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
  cmd->add_option("--sparse", a->sparse,
                  "N:M (2:4, 4:8): store the block Linears of an N:M-pruned model compressed (kept values + "
                  "indices); fails if a Linear breaks the pattern. mask: for unstructured sparsity, store every block "
                  "Linear with >= 50% zeros as per-16-column bitmasks + kept f32 values (others stay dense). GGUF "
                  "only, read by shrink, not llama.cpp (docs/pruning.md)");
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace shrink::cli
