// shrink run MODEL -p TEXT — generate text (greedy by default; --temp/--top-k/--top-p/--seed to sample).
#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "core/cpu.h"
#include "core/error.h"
#include "model/sampler.h"
#include "model/transformer.h"

namespace shrink::cli {

namespace {
struct RunArgs {
  ModelArgs m;
  std::string prompt = "Once upon a time";
  int n = 128;
  int ctx = 0;
  SamplerOptions s;
  bool quiet_stats = false;
  std::string kv = "f32";
};

void run_generate(const RunArgs& a) {
  ModelFile f = open_model(a.m, true);
  Transformer model(f);
  const Tokenizer& tok = *f.tokenizer;
  std::vector<int32_t> ids = tok.encode(a.prompt, true);
  SHRINK_CHECK(!ids.empty(), "the prompt encodes to no tokens");
  const int ctx = a.ctx > 0 ? a.ctx : std::max<int>(f.config.max_seq_len, 512);
  SHRINK_CHECK(int(ids.size()) < ctx, "the prompt (", ids.size(), " tokens) does not fit the context of ", ctx);
  KVCache cache = model.new_cache(ctx, parse_kv_type(a.kv));
  Sampler sampler(a.s);
  std::vector<float> logits(f.config.vocab_size);

  std::printf("%s", tok.decode(ids).c_str());
  std::fflush(stdout);
  const double t0 = now_seconds();
  model.forward(ids.data(), int(ids.size()), cache, logits.data(), false);
  const double t1 = now_seconds();
  int32_t prev = ids.back();
  int generated = 0;
  while (generated < a.n && cache.len < ctx) {
    const int32_t next = sampler.sample(logits.data(), f.config.vocab_size);
    if (next == tok.eos_id()) break;
    std::printf("%s", tok.piece(next, prev).c_str());
    std::fflush(stdout);
    prev = next;
    ++generated;
    if (generated == a.n || cache.len >= ctx) break;
    model.forward(&next, 1, cache, logits.data(), false);
  }
  const double t2 = now_seconds();
  std::printf("\n");
  std::fflush(stdout);
  if (!a.quiet_stats)
    std::fprintf(stderr, "prompt %zu tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s)\n",
                 ids.size(), t1 - t0, ids.size() / (t1 - t0), generated, t2 - t1,
                 generated > 1 ? (generated - 1) / (t2 - t1) : 0.0);
}
}  // namespace

void add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt");
  add_model_args(cmd, a->m);
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text")->capture_default_str();
  cmd->add_option("-n,--n-predict", a->n, "Tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--ctx", a->ctx, "Context length (default: the model's, at least 512)");
  cmd->add_option("--temp", a->s.temperature, "Sampling temperature; 0 = greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", a->s.top_k, "Keep only the k most likely tokens (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", a->s.top_p, "Nucleus sampling mass (1 = off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->s.seed, "Random seed")->capture_default_str();
  cmd->add_option("--kv-cache", a->kv, "KV-cache type: f32 or int8 (per-head int8 codes + f32 scale)")
      ->capture_default_str()
      ->check(CLI::IsMember(kv_type_names()));
  cmd->add_flag("--no-stats", a->quiet_stats, "Do not print speed on stderr");
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace shrink::cli
