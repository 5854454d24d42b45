// shrink eval MODEL --ppl FILE [--ctx N] [--chunks K] [--base OTHER] — perplexity
// with llama.cpp's protocol, and KL-divergence / top-1 agreement vs a base model
// (--kv-cache / --base-kv-cache choose each one's KV-cache type).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file.h"
#include "eval/perplexity.h"

#include <nlohmann/json.hpp>

namespace shrink::cli {

namespace {
struct EvalArgs {
  ModelArgs m;
  std::string ppl_file, base;
  eval::PerplexityOptions p;
  std::string json_out;
  std::string kv = "f32", base_kv = "f32";
};

void run_eval(const EvalArgs& a) {
  ModelFile f = open_model(a.m, true);
  Transformer model(f);
  std::unique_ptr<ModelFile> bf;
  std::unique_ptr<Transformer> base;
  Transformer* base_model = nullptr;
  if (a.base == a.m.model) {
    base_model = &model;  // the same model under another KV cache (--kv-cache vs --base-kv-cache)
  } else if (!a.base.empty()) {
    ModelArgs ba = a.m;
    ba.model = a.base;
    bf = std::make_unique<ModelFile>(open_model(ba, false));
    base = std::make_unique<Transformer>(*bf);
    base_model = base.get();
  }
  const std::string text = read_text_file(a.ppl_file);
  std::vector<int32_t> tokens = f.tokenizer->encode(text, true);
  std::fprintf(stderr, "%s: %zu tokens; windows of %d\n", a.ppl_file.c_str(), tokens.size(), a.p.n_ctx);
  eval::PerplexityOptions opt = a.p;
  opt.bos_id = f.tokenizer->bos_id() >= 0 ? f.tokenizer->bos_id() : tokens.front();
  opt.kv_cache = parse_kv_type(a.kv);
  opt.base_kv_cache = parse_kv_type(a.base_kv);
  auto res = eval::perplexity(model, tokens, opt, base_model, [](int done, int total, double ppl) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "eval: window %d/%d, running PPL %.4f", done, total, ppl);
    progress_line(buf, done == total);
  });
  std::printf("PPL = %.4f +/- %.5f  (%lld tokens scored in %d windows of %d, %s, %s KV cache, %.1f s)\n", res.ppl,
              res.ppl_err, (long long)res.scored, res.chunks, opt.n_ctx,
              opt.all_positions ? "all positions" : "second half", kv_type_name(opt.kv_cache), res.seconds);
  if (res.has_base)
    std::printf("base PPL = %.4f; KLD(base||model) = %.6f +/- %.6f; top-1 agreement = %.2f%%\n", res.base_ppl, res.kld,
                res.kld_err, 100.0 * res.top1);
  if (!a.json_out.empty()) {
    nlohmann::json j = {{"model", a.m.model}, {"text", a.ppl_file}, {"ctx", opt.n_ctx}, {"ubatch", opt.ubatch}, {"chunks", res.chunks},
                        {"all_positions", opt.all_positions}, {"tokens_scored", res.scored}, {"ppl", res.ppl},
                        {"ppl_err", res.ppl_err}, {"kv_cache", kv_type_name(opt.kv_cache)},
                        {"seconds", res.seconds}};
    if (res.has_base) {
      j["base"] = a.base;
      j["base_kv_cache"] = kv_type_name(opt.base_kv_cache);
      j["base_ppl"] = res.base_ppl;
      j["kld"] = res.kld;
      j["kld_err"] = res.kld_err;
      j["top1_agreement"] = res.top1;
    }
    write_text_file(a.json_out, j.dump(2) + "\n");
  }
}
}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Perplexity (llama.cpp protocol), KL-divergence and top-1 agreement vs a base");
  add_model_args(cmd, a->m);
  cmd->add_option("--ppl", a->ppl_file, "Text file to score (e.g. wiki.test.raw)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-c,--ctx", a->p.n_ctx, "Window (context) length in tokens")->capture_default_str()->check(CLI::Range(4, 1 << 20));
  cmd->add_option("--chunks", a->p.chunks, "Score only the first K windows (-1 = all)")->capture_default_str();
  cmd->add_option("--base", a->base, "Base model for KL-divergence and top-1 agreement (may be MODEL itself, "
                  "to compare KV-cache types)");
  cmd->add_option("--kv-cache", a->kv, "KV-cache type of MODEL: f32 or int8 (per-head int8 codes + f32 scale)")
      ->capture_default_str()
      ->check(CLI::IsMember(kv_type_names()));
  cmd->add_option("--base-kv-cache", a->base_kv, "KV-cache type of the base model")
      ->capture_default_str()
      ->check(CLI::IsMember(kv_type_names()));
  cmd->add_option("--ubatch", a->p.ubatch, "Tokens per forward call (llama.cpp's -ub; 0 = the whole window). Below "
                  "16..128 rows the quantized-weight kernels round activations to Q8 as decode does; a whole window "
                  "dequantizes the weights and multiplies f32 activations")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--all-positions", a->p.all_positions, "Score every position, not only the second half of each window");
  cmd->add_option("--json", a->json_out, "Also write the results as JSON to this file");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace shrink::cli
