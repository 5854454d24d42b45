// shrink init --preset NAME|--config FILE -o OUT — a random-weight model of any
// supported shape, written as GGUF (OUT ends in .gguf) or a Hugging Face directory.
#include <cstdio>

#include "cli/commands.h"
#include "core/cpu.h"
#include "core/error.h"
#include "model/random_init.h"

namespace shrink::cli {

namespace {
struct InitArgs {
  std::string preset, config, out, dtype = "f32";
  uint64_t seed = 1;
  int threads = 0;
};

void run_init(const InitArgs& a) {
  SHRINK_CHECK(a.preset.empty() != a.config.empty(), "give exactly one of --preset or --config");
  set_num_threads(a.threads);
  ModelConfig c = a.preset.empty() ? config_from_json_file(a.config) : preset_config(a.preset);
  const DType dt = parse_dtype(a.dtype);
  SHRINK_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, "--dtype must be f32, f16 or bf16");
  const double t0 = now_seconds();
  std::fprintf(stderr, "init: %s, %.1f M parameters, %s\n", c.summary().c_str(), c.parameter_count() / 1e6,
               a.dtype.c_str());
  ModelFile m = random_model(c, dt, a.seed);
  const bool gguf = a.out.size() > 5 && a.out.substr(a.out.size() - 5) == ".gguf";
  if (gguf)
    save_gguf_model(m, a.out);
  else
    save_hf(m, a.out, dt);
  std::fprintf(stderr, "init: wrote %s (%s) in %.1f s. Random weights: speed figures are real, quality figures are "
               "meaningless.\n", a.out.c_str(), human_bytes(double(m.weight_bytes())).c_str(), now_seconds() - t0);
}
}  // namespace

void add_init(CLI::App& app) {
  auto a = std::make_shared<InitArgs>();
  std::string presets;
  for (const auto& n : preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  auto* cmd = app.add_subcommand("init", "Create a random-weight model of a given shape (for speed work and tests)");
  cmd->add_option("--preset", a->preset, "Shape preset: " + presets);
  cmd->add_option("--config", a->config, "JSON config (shrink fields or a Hugging Face config.json)")->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a->out, "Output: FILE.gguf, or a directory for Hugging Face safetensors")->required();
  cmd->add_option("--dtype", a->dtype, "Weight type: f32, f16, bf16")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "Threads (default: all cores)");
  cmd->callback([a] { run_init(*a); });
}

}  // namespace shrink::cli
