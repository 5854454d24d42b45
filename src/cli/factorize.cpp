// shrink factorize MODEL --method svd|asvd|svd-llm --ratio R [--energy E] [--calib FILE] -o OUT
// Low-rank factorization of every block Linear (compress/lowrank): W ~= U V,
// saved as GGUF tensors BASE.weight.lr_u / .lr_v (docs/lowrank.md), or with
// --dense multiplied back into ordinary weights llama.cpp loads. Progress per
// layer on stderr; a JSON report (per-layer rank, kept parameters, weight and
// output error, time) beside the output.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "compress/lowrank/lowrank.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/file.h"

namespace shrink::cli {

namespace {

struct FactorizeArgs {
  ModelArgs m;
  std::string method = "svd-llm", calib_file, out, report, factor_dtype = "f32", svd = "exact";
  double ratio = 0, energy = 0;
  std::vector<std::string> layer_ratios, ppl_files;
  double alpha = 0.5, damp = 0;
  bool dense = false;
  int64_t calib_tokens = 32768;
  int seq_len = 512;
  eval::PerplexityOptions p;
};

lowrank::FactorizeOptions make_options(const FactorizeArgs& a) {
  lowrank::FactorizeOptions opt;
  opt.method = lowrank::parse_method(a.method);
  SHRINK_CHECK(a.ratio > 0 || a.energy > 0, "give --ratio R (kept parameter fraction) and/or --energy E");
  opt.ratio = a.ratio > 0 ? a.ratio : 1.0;
  opt.energy = a.energy;
  opt.asvd_alpha = a.alpha, opt.damp = a.damp;
  opt.randomized = a.svd == "randomized";
  SHRINK_CHECK(a.factor_dtype == "f32" || a.factor_dtype == "bf16", "--factor-dtype is f32 or bf16, not ",
               a.factor_dtype);
  opt.factor_dtype = a.factor_dtype == "bf16" ? DType::BF16 : DType::F32;
  for (const std::string& s : a.layer_ratios) {
    const size_t eq = s.rfind('=');
    SHRINK_CHECK(eq != std::string::npos && eq > 0, "--layer-ratio wants PATTERN=RATIO (e.g. ffn_down=0.9), got '", s,
                 "'");
    char* end = nullptr;
    const double r = std::strtod(s.c_str() + eq + 1, &end);
    SHRINK_CHECK(end && *end == '\0' && end != s.c_str() + eq + 1, "--layer-ratio ", s, ": '", s.substr(eq + 1),
                 "' is not a number");
    opt.layer_ratios.emplace_back(s.substr(0, eq), r);
  }
  return opt;
}

nlohmann::json layer_json(const lowrank::LayerReport& l) {
  nlohmann::json j = {{"name", l.name}, {"rows", l.rows}, {"cols", l.cols}, {"rank", l.rank},
                      {"kept", l.rank ? "lowrank" : "dense"}, {"params_dense", l.params_dense},
                      {"params_kept", l.params_kept}, {"kept_ratio", double(l.params_kept) / double(l.params_dense)},
                      {"energy_kept", l.energy_kept}, {"weight_rel_err", l.weight_rel_err}, {"seconds", l.seconds}};
  if (l.output_rel_err >= 0) j["output_rel_err"] = l.output_rel_err;
  if (l.damp > 0) j["damp"] = l.damp;
  return j;
}

// Writes the model: low-rank GGUF, or (--dense) products multiplied out into a GGUF or HF directory.
void save(const FactorizeArgs& a, Transformer& model, const ModelFile& f) {
  if (a.dense) {
    const int n = lowrank::densify_lowrank(model);
    std::fprintf(stderr, "--dense: %d low-rank linears multiplied out into dense f32 weights\n", n);
  }
  if (is_gguf_path(a.out)) {
    ModelFile out = f;
    model.export_to(out);
    save_gguf_model(out, a.out);
  } else {
    SHRINK_CHECK(a.dense, "-o ", a.out, ": low-rank factors are stored in GGUF only; give OUT.gguf, or --dense to write "
                 "a Hugging Face directory of multiplied-out weights");
    save_quantized_hf(model, f, a.out, DType::F32);
  }
}

void run_factorize(const FactorizeArgs& a) {
  SHRINK_CHECK(!a.out.empty() || !a.ppl_files.empty(), "nothing to do: give -o OUT and/or --ppl TEXT");
  const lowrank::FactorizeOptions opt = make_options(a);
  ModelFile f = open_model(a.m, !a.calib_file.empty() || !a.ppl_files.empty());
  Transformer model(f);
  calib::CalibSet calib;
  if (lowrank::needs_calibration(opt.method))
    SHRINK_CHECK(!a.calib_file.empty(), a.method, " needs calibration text: --calib FILE");
  if (!a.calib_file.empty()) {
    calib = calib::make_calib_set(*f.tokenizer, read_text_file(a.calib_file), a.calib_tokens, a.seq_len);
    std::fprintf(stderr, "calibration: %zu sequences of %d tokens from %s\n", calib.seqs.size(), a.seq_len,
                 a.calib_file.c_str());
  }
  const int64_t bytes_before = model.weight_bytes();
  const double t0 = now_seconds();
  const auto rep = lowrank::factorize_model(model, calib, opt, [&](int layer, int n, const std::string& what) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: layer %d/%d %s (%.0f s)", a.method.c_str(), std::min(layer + 1, n), n,
                  what.c_str(), now_seconds() - t0);
    progress_line(buf);
  });
  progress_line(a.method + " done in " + std::to_string(int(rep.seconds)) + " s", true);

  int64_t dense = 0, kept = 0, n_dense = 0, linear_params = 0, linear_bytes = 0;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : rep.layers) {
    dense += l.params_dense, kept += l.params_kept, n_dense += l.rank == 0;
    layers.push_back(layer_json(l));
  }
  for (Linear* l : model.linears())
    if (!(l == &model.output() && model.config().tied_embeddings))
      linear_params += l->in_features() * l->out_features(), linear_bytes += l->weight().bytes();
  if (n_dense > 0)
    std::fprintf(stderr, "%lld of %zu linears kept dense: their rank would not have saved parameters\n",
                 static_cast<long long>(n_dense), rep.layers.size());
  char target[64];
  std::snprintf(target, sizeof target, "kept %.2f %s", double(kept) / double(dense), a.factor_dtype.c_str());
  nlohmann::json j = {{"model", a.m.model}, {"method", a.method}, {"target", target}, {"ratio", opt.ratio},
                      {"energy", opt.energy}, {"factor_dtype", a.factor_dtype}, {"seconds", rep.seconds},
                      {"factorized_params_dense", dense}, {"factorized_params_kept", kept},
                      {"kept_param_ratio", double(kept) / double(dense)}, {"linears_kept_dense", n_dense},
                      {"linear_params", linear_params}, {"linear_bytes", linear_bytes},
                      {"linear_bits_per_weight", 8.0 * double(linear_bytes) / double(linear_params)},
                      {"weight_bytes_before", bytes_before}, {"weight_bytes_after", model.weight_bytes()},
                      {"layers", layers}};
  if (opt.method == lowrank::Method::Asvd) j["asvd_alpha"] = opt.asvd_alpha;
  j["svd"] = a.svd;
  if (!opt.layer_ratios.empty()) j["layer_ratios"] = a.layer_ratios;
  if (rep.calib_tokens > 0) j["calib"] = {{"file", a.calib_file}, {"tokens", rep.calib_tokens}, {"seq_len", a.seq_len}};
  if (!a.ppl_files.empty()) {
    Transformer base(f);  // the original weights: f is untouched by factorization
    for (const std::string& text : a.ppl_files) j["evals"].push_back(evaluate_vs_base(model, base, f, text, a.p));
  }
  if (!a.out.empty()) {
    save(a, model, f);
    j["output"] = a.out, j["dense_output"] = a.dense, j["file_bytes"] = path_bytes(a.out);
    std::printf("wrote %s (%s, kept %.1f%% of the factorized parameters)\n", a.out.c_str(),
                human_bytes(double(j["file_bytes"].get<int64_t>())).c_str(), 100.0 * double(kept) / double(dense));
  }
  j["peak_rss_bytes"] = peak_rss_bytes();
  const std::string report = !a.report.empty() ? a.report
                             : a.out.empty()    ? ""
                             : is_gguf_path(a.out) ? a.out + ".json"
                                                   : a.out + "/shrink_factorize_report.json";
  if (!report.empty()) write_text_file(report, j.dump(2) + "\n");
}

}  // namespace

void add_factorize(CLI::App& app) {
  auto a = std::make_shared<FactorizeArgs>();
  auto* cmd = app.add_subcommand("factorize",
                                 "Low-rank factorization of the block linears (W ~= U V by truncated SVD: plain, "
                                 "activation-aware ASVD, or SVD-LLM's whitened SVD), writing a GGUF with U/V tensors "
                                 "(or --dense: multiplied out) and a JSON report beside it");
  add_model_args(cmd, a->m);
  cmd->add_option("--method", a->method,
                  "svd (Frobenius-optimal, no data) | asvd (columns scaled by mean|x|^alpha; --calib) | svd-llm "
                  "(whitened by the Cholesky factor of X^T X: least output error; --calib)")
      ->capture_default_str()
      ->check(CLI::IsMember({"svd", "asvd", "svd-llm"}));
  cmd->add_option("--ratio", a->ratio,
                  "Kept parameter fraction of each factorized linear: rank = floor(R * out * in / (out + in)); a "
                  "linear whose rank would not save parameters stays dense")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--energy", a->energy,
                  "Rank = smallest keeping this fraction of the spectrum's energy (sum sigma^2 of W, W S or W L); "
                  "with --ratio the smaller rank wins")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--layer-ratio", a->layer_ratios,
                  "Per-layer ratio PATTERN=R for linears whose name contains PATTERN (repeatable; the last match "
                  "wins), e.g. ffn_down=0.9 or blk.0.=1");
  cmd->add_option("--alpha", a->alpha, "ASVD: exponent of mean|x| in the column scales")->capture_default_str();
  cmd->add_option("--damp", a->damp,
                  "SVD-LLM: dampening (fraction of mean diag X^T X) tried first; raised tenfold while X^T X is not "
                  "positive definite")
      ->capture_default_str();
  cmd->add_option("--svd", a->svd,
                  "exact (Eigen BDCSVD) | randomized (leading triplets only, Halko et al. 2011: for big models "
                  "whose full SVDs take minutes; not with --energy)")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "randomized"}));
  cmd->add_option("--factor-dtype", a->factor_dtype, "Storage of U and V: f32 | bf16")->capture_default_str();
  cmd->add_flag("--dense", a->dense,
                "Write U V multiplied out as ordinary dense f32 weights (a GGUF llama.cpp loads, or a HF directory)");
  cmd->add_option("--calib", a->calib_file, "Calibration text (asvd, svd-llm; with svd: reports output errors)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--calib-tokens", a->calib_tokens, "Calibration tokens to use")->capture_default_str();
  cmd->add_option("--seq-len", a->seq_len, "Calibration sequence length")->capture_default_str();
  cmd->add_option("-o,--output", a->out,
                  "Output: FILE.gguf (low-rank tensors BASE.weight.lr_u/.lr_v, loaded by shrink; with --dense a "
                  "plain GGUF), or with --dense a Hugging Face directory");
  cmd->add_option("--report", a->report, "JSON report path (default: OUTPUT.json)");
  cmd->add_option("--ppl", a->ppl_files,
                  "After factorizing, measure perplexity, KLD and top-1 vs the original on this text (repeatable)")
      ->check(CLI::ExistingFile);
  cmd->add_option("-c,--ctx", a->p.n_ctx, "--ppl window length")->capture_default_str();
  cmd->add_option("--chunks", a->p.chunks, "--ppl: first K windows only (-1 = all)")->capture_default_str();
  cmd->callback([a] { run_factorize(*a); });
}

}  // namespace shrink::cli
