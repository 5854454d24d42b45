// shrink quantize MODEL --method rtn|imatrix|gptq|awq --type T [--calib FILE] -o OUT.gguf
// Weight quantization into ggml block types (a GGUF llama.cpp loads) or shrink's
// group formats; progress per layer on stderr; a JSON report beside the output.
// --method dynamic|w8a8|smoothquant|llm-int8: W8A8 (weights and activations
// int8, compress/actquant), measured in place with --ppl and/or written as a
// HF directory in compressed-tensors int-quantized form (LLM.int8(): plus
// config.json shrink_outlier_threshold).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "compress/actquant/w8a8.h"
#include "compress/quant/mixed.h"
#include "compress/quant/presets.h"
#include "compress/quant/quantize.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/file.h"
#include "eval/bench.h"
#include "eval/perplexity.h"
#include "io/imatrix.h"

namespace shrink::cli {

namespace {

struct QuantizeArgs {
  ModelArgs m;
  std::string method = "rtn", type, preset, head_type, embed_type, calib_file, imatrix_file, out, report;
  std::string observer = "minmax";  // W8A8 static activation ranges
  float alpha = 0.5f, outlier_threshold = 6.0f;
  bool per_token = false, smooth_all = false, search_alpha = false, speed = false;
  std::vector<std::string> ppl_files;
  int bits = 0;
  int64_t group = 128;
  bool sym = false, act_order = false, gptq_weighted_scales = false, keep_head = false, keep_embed = false,
       no_clip = false;
  float damp = 0.01f;
  double target_bpw = 0;
  int64_t sensitivity_tokens = 1024;
  int64_t calib_tokens = 32768;
  int seq_len = 512;
  eval::PerplexityOptions p;
};

// Records the written model in the report and says so on stdout.
void note_output(nlohmann::json& j, const std::string& out, double linear_bits) {
  j["output"] = out;
  j["file_bytes"] = path_bytes(out);
  std::printf("wrote %s (%s, %.2f bits per weight in the linears)\n", out.c_str(),
              human_bytes(double(j["file_bytes"].get<int64_t>())).c_str(), linear_bits);
}

// --report, else beside the output (OUT.gguf.json, or OUT/shrink_quantize_report.json).
std::string report_path(const QuantizeArgs& a) {
  if (!a.report.empty() || a.out.empty()) return a.report;
  return is_gguf_path(a.out) ? a.out + ".json" : a.out + "/shrink_quantize_report.json";
}

quant::QuantTarget parse_target(const QuantizeArgs& a) {
  if (!a.type.empty()) {
    try {
      return quant::QuantTarget::parse(a.type);
    } catch (const std::exception&) {
      // Q4_K_M and friends are not types; llama-quantize users will try them here first.
      if (quant::is_preset(a.type))
        fail("'", a.type, "' is a llama-quantize recipe (a per-tensor mix of types), not one type: use --preset ",
             a.type);
      throw;
    }
  }
  if (a.method == "onebit") return quant::QuantTarget::parse("onebit");
  if (a.target_bpw > 0 && a.bits == 0) return quant::QuantTarget::of_block(DType::Q4_K);  // ladder of ggml types
  SHRINK_CHECK(a.bits >= 2 && a.bits <= 8, "give --type (q4_k, q8_0, int4g128, nf4g64, ...) or --bits 2..8");
  const std::string g = a.group > 0 ? "g" + std::to_string(a.group) : a.group == 0 ? "ch" : "t";
  return quant::QuantTarget::parse("int" + std::to_string(a.bits) + g + (a.sym ? "sym" : ""));
}

nlohmann::json layer_json(const quant::LayerReport& l) {
  nlohmann::json j = {{"name", l.name}, {"type", l.type}, {"rows", l.rows}, {"cols", l.cols}, {"bytes", l.bytes},
                      {"bits_per_weight", 8.0 * l.bytes / double(l.rows * l.cols)},
                      {"weight_rel_err", l.weight_rel_err}, {"seconds", l.seconds}};
  if (l.output_rel_err >= 0) j["output_rel_err"] = l.output_rel_err;
  if (l.awq_alpha >= 0) j["awq_alpha"] = l.awq_alpha, j["awq_loss_ratio"] = l.awq_loss_ratio;
  return j;
}

// --bench: prefill and decode tokens/s of the quantized model in this process
// (1 thread, 16-token prompt, 32 decoded, mean of 3 repetitions): the speed of what
// was not saved and a quick figure for what was.
nlohmann::json quick_bench(Transformer& model) {
  eval::BenchOptions bo;
  bo.n_prompt = 16, bo.n_gen = 32, bo.reps = 3, bo.threads = {1}, bo.measure_bandwidth = false;
  const eval::BenchResult r = eval::bench(model, bo);
  return {{"threads", 1}, {"pp_tps", r.rows[0].pp_tps}, {"tg_tps", r.rows[0].tg_tps}, {"weight_bytes", r.weight_bytes}};
}

// What to quantize into: a preset (llama-quantize recipe) or --type/--bits,
// then the head and token-embedding choices.
quant::QuantizeOptions make_options(const QuantizeArgs& a, Transformer& model) {
  quant::QuantizeOptions opt;
  // --method onebit is SVID rounding (OneBit's initialisation; compress/quant/onebit.h) into the
  // onebit (or, with --type ternary, ternary) format; other methods reach it with --type onebit.
  opt.method = a.method == "onebit" ? "rtn" : a.method;
  if (a.method == "onebit") SHRINK_CHECK(a.type.empty() || a.type == "onebit" || a.type == "ternary",
                                         "--method onebit writes --type onebit or ternary, not ", a.type);
  if (!a.preset.empty()) {
    SHRINK_CHECK(a.type.empty() && a.bits == 0, "give either --preset or --type/--bits, not both");
    quant::apply_preset(a.preset, model, opt);
  } else {
    // llama-quantize's defaults for the head and the embedding table (shared with `shrink qat`).
    opt = quant::type_options(parse_target(a), model.config().tied_embeddings);
    opt.method = a.method == "onebit" ? "rtn" : a.method;
  }
  if (!a.head_type.empty()) opt.head = quant::QuantTarget::parse(a.head_type);
  if (!a.embed_type.empty()) opt.quantize_embed = true, opt.embed = quant::QuantTarget::parse(a.embed_type);
  if (a.keep_embed) opt.quantize_embed = false;
  opt.quantize_head = !a.keep_head;
  opt.gptq.damp = a.damp;
  opt.gptq.act_order = a.act_order;
  opt.gptq.weighted_scales = a.gptq_weighted_scales;
  opt.awq.clip = !a.no_clip;
  if (!a.imatrix_file.empty()) {
    SHRINK_CHECK(a.method == "imatrix", "--imatrix FILE is used by --method imatrix");
    std::vector<LinearShape> shapes;
    for (Linear* l : model.linears()) shapes.push_back({l->name(), l->in_features()});
    std::vector<std::string> missing;
    opt.importance = std::make_shared<const std::map<std::string, std::vector<float>>>(
        imatrix_for_linears(read_imatrix(a.imatrix_file), shapes, &missing));
    for (const std::string& m : missing)
      std::fprintf(stderr, "imatrix: no entry for %s in %s: rounded without importance\n", m.c_str(),
                   a.imatrix_file.c_str());
  }
  bool all_block = opt.target.is_block && opt.head.is_block;
  for (const auto& [name, t] : opt.per_layer) all_block = all_block && t.is_block;
  SHRINK_CHECK(a.out.empty() || !is_gguf_path(a.out) || all_block, "-o ", a.out, ": ", opt.target.name(),
               " is a group format, which GGUF cannot hold; give a directory to write a Hugging Face model "
               "(compressed-tensors pack-quantized)");
  return opt;
}

// --target-bpw: per-Linear targets from measured sensitivity (compress/quant/mixed.h).
nlohmann::json allocate(const QuantizeArgs& a, Transformer& model, const calib::CalibSet& calib,
                        quant::QuantizeOptions& opt) {
  SHRINK_CHECK(a.preset.empty(), "give either --preset or --target-bpw, not both");
  const double t0 = now_seconds();
  const auto ladder = quant::default_ladder(opt.target);
  const auto sens = quant::measure_sensitivity(model, calib, a.sensitivity_tokens, ladder, opt, [&](int i, int n) {
    progress_line("sensitivity: Linear " + std::to_string(i + 1) + "/" + std::to_string(n) + " (" +
                  std::to_string(int(now_seconds() - t0)) + " s)");
  });
  int64_t params = 0, min_bytes = 0;
  for (const auto& s : sens) params += s.params, min_bytes += *std::min_element(s.bytes.begin(), s.bytes.end());
  const auto budget = static_cast<int64_t>(a.target_bpw * double(params) / 8);
  if (budget < min_bytes)
    std::fprintf(stderr, "warning: --target-bpw %.3f is below the cheapest ladder (%.3f bits per weight): using that\n",
                 a.target_bpw, 8.0 * double(min_bytes) / double(params));
  opt.per_layer = quant::allocate_bits(sens, budget);
  progress_line("sensitivity measured in " + std::to_string(int(now_seconds() - t0)) + " s", true);
  nlohmann::json j = {{"target_bpw", a.target_bpw}, {"tokens", a.sensitivity_tokens}, {"seconds", now_seconds() - t0}};
  for (const auto& s : sens) {
    nlohmann::json row = {{"name", s.name}, {"chosen", opt.per_layer.at(s.name).name()}};
    for (size_t k = 0; k < s.targets.size(); ++k)
      row["kld"][s.targets[k].name()] = s.kld[k], row["bytes"][s.targets[k].name()] = s.bytes[k];
    j["layers"].push_back(row);
  }
  return j;
}

// W8A8 methods: every block Linear becomes int8 x int8 (model/int8_weight.h).
void run_activation_quant(const QuantizeArgs& a) {
  SHRINK_CHECK(!a.out.empty() || !a.ppl_files.empty() || a.speed, "nothing to do: give -o DIR, --ppl TEXT and/or --bench");
  SHRINK_CHECK(a.out.empty() || !is_gguf_path(a.out), "-o ", a.out,
               ": W8A8 has no GGUF form; give a directory to write a Hugging Face model (compressed-tensors "
               "int-quantized)");
  SHRINK_CHECK(a.type.empty() && a.preset.empty() && a.bits == 0 && a.target_bpw == 0,
               "--method ", a.method, " is int8 weights and activations: --type/--bits/--preset/--target-bpw do not apply");
  actquant::ActQuantOptions opt;
  opt.method = a.method;
  opt.observer = actquant::parse_observer(a.observer);
  opt.alpha = a.alpha, opt.per_token = a.per_token, opt.outlier_threshold = a.outlier_threshold;
  opt.smooth_all = a.smooth_all;
  opt.search_alpha = a.search_alpha;
  ModelFile f = open_model(a.m, true);
  SHRINK_CHECK(a.out.empty() || f.config.arch != Arch::GPT2, "-o ", a.out,
               ": W8A8 GPT-2 cannot be saved (its Conv1D layers are not compressed-tensors Linears); measure it in "
               "place with --ppl and --bench");
  Transformer model(f);
  calib::CalibSet calib;
  if (actquant::needs_calibration(opt)) {
    SHRINK_CHECK(!a.calib_file.empty(), a.method, " needs calibration text: --calib FILE");
    calib = calib::make_calib_set(*f.tokenizer, read_text_file(a.calib_file), a.calib_tokens, a.seq_len);
    std::fprintf(stderr, "calibration: %zu sequences of %d tokens from %s\n", calib.seqs.size(), a.seq_len,
                 a.calib_file.c_str());
  }
  const double t0 = now_seconds();
  const auto rep = actquant::quantize_activations(model, calib, opt, [&](int layer, int n, const std::string& what) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: layer %d/%d %s (%.0f s)", a.method.c_str(), std::min(layer + 1, n), n,
                  what.c_str(), now_seconds() - t0);
    progress_line(buf);
  });
  progress_line(a.method + " done in " + std::to_string(int(rep.seconds)) + " s", true);
  int64_t params = 0, bytes = 0;
  nlohmann::json j = {{"model", a.m.model}, {"method", a.method}, {"seconds", rep.seconds}};
  if (actquant::needs_calibration(opt)) {
    j["calib"] = {{"file", a.calib_file}, {"tokens", rep.calib_tokens}, {"seq_len", a.seq_len}};
    if (!(a.method == "smoothquant" && a.per_token)) j["observer"] = actquant::observer_name(opt.observer);
  }
  if (a.method == "smoothquant") j["alpha"] = a.alpha, j["per_token"] = a.per_token, j["smooth_all"] = a.smooth_all,
                                    j["alpha_search"] = a.search_alpha;
  if (a.method == "llm-int8") j["outlier_threshold"] = a.outlier_threshold;
  for (const auto& l : rep.layers) {
    params += l.rows * l.cols, bytes += l.bytes;
    nlohmann::json row = {{"name", l.name}, {"kind", l.kind}, {"rows", l.rows}, {"cols", l.cols}, {"bytes", l.bytes},
                          {"weight_rel_err", l.weight_rel_err}, {"seconds", l.seconds}};
    if (l.act_scale > 0) row["act_scale"] = l.act_scale, row["act_max"] = l.act_max;
    j["layers"].push_back(row);
  }
  for (const auto& g : rep.smoothed)
    j["smoothed"].push_back({{"group", g.first}, {"alpha", g.alpha}, {"act_max_before", g.act_max_before},
                             {"act_max_after", g.act_max_after}, {"s_min", g.s_min}, {"s_max", g.s_max}});
  j["linear_params"] = params, j["linear_bytes"] = bytes, j["linear_bits_per_weight"] = 8.0 * bytes / double(params);
  j["target"] = a.method == "llm-int8" ? "int8 + f32 outliers" : a.method == "dynamic" || a.per_token ? "w8a8 per-token" : "w8a8 static";
  if (!a.out.empty()) {
    // Dense tensors (embedding, norms, head) in the model's own float type when they fit it
    // unchanged, else F32: the saved model computes exactly what was measured here.
    const DType emb = f.get("token_embd.weight").dtype;
    save_quantized_hf(model, f, a.out, emb == DType::F16 || emb == DType::BF16 ? emb : DType::F32, true);
    note_output(j, a.out, 8.0 * bytes / double(params));
  }
  if (!a.ppl_files.empty()) {
    Transformer base(f);
    for (const std::string& text : a.ppl_files) j["evals"].push_back(evaluate_vs_base(model, base, f, text, a.p));
  }
  if (a.speed) j["bench"] = quick_bench(model);
  j["peak_rss_bytes"] = peak_rss_bytes();
  if (const std::string report = report_path(a); !report.empty()) write_text_file(report, j.dump(2) + "\n");
}

void run_quantize(const QuantizeArgs& a) {
  if (actquant::is_activation_method(a.method)) return run_activation_quant(a);
  const double t0 = now_seconds();
  SHRINK_CHECK(!a.out.empty() || !a.ppl_files.empty() || a.speed, "nothing to do: give -o OUT, --ppl TEXT and/or --bench");
  ModelFile f = open_model(a.m, a.method != "rtn" || a.target_bpw > 0 || !a.ppl_files.empty());  // tokenizer
  Transformer model(f);
  quant::QuantizeOptions opt = make_options(a, model);

  calib::CalibSet calib;
  const bool data_free = a.method == "rtn" || a.method == "onebit" || !a.imatrix_file.empty();
  if (!data_free || a.target_bpw > 0) {
    SHRINK_CHECK(!a.calib_file.empty(), a.target_bpw > 0 ? "--target-bpw" : a.method.c_str(),
                 " needs calibration text: --calib FILE");
    calib = calib::make_calib_set(*f.tokenizer, read_text_file(a.calib_file), a.calib_tokens, a.seq_len);
    std::fprintf(stderr, "calibration: %zu sequences of %d tokens from %s\n", calib.seqs.size(), a.seq_len,
                 a.calib_file.c_str());
  }
  nlohmann::json allocation;
  if (a.target_bpw > 0) allocation = allocate(a, model, calib, opt);
  const int64_t bytes_before = model.weight_bytes();
  quant::QuantizeReport rep = quant::quantize_model(model, calib, opt, [&](int layer, int n, const std::string& what) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s %s: layer %d/%d %s (%.0f s)", a.method.c_str(), opt.target.name().c_str(),
                  layer + 1 > n ? n : layer + 1, n, what.c_str(), now_seconds() - t0);
    progress_line(buf);
  });
  progress_line(a.method + " done in " + std::to_string(int(rep.seconds)) + " s", true);

  int64_t params = 0, bytes = 0;
  for (Linear* l : model.linears())
    if (!(l == &model.output() && model.config().tied_embeddings))
      params += l->in_features() * l->out_features(), bytes += l->weight().bytes();
  nlohmann::json j = {{"model", a.m.model}, {"method", a.method}, {"target", a.preset.empty() ? opt.target.name() : a.preset},
                      {"head", opt.quantize_head ? opt.head.name() : "unchanged"}, {"seconds", rep.seconds},
                      {"linear_params", params}, {"linear_bytes", bytes},
                      {"linear_bits_per_weight", 8.0 * bytes / double(params)},
                      {"weight_bytes_before", bytes_before}, {"weight_bytes_after", model.weight_bytes()}};
  if (rep.calib_tokens > 0)
    j["calib"] = {{"file", a.calib_file}, {"tokens", rep.calib_tokens}, {"seq_len", a.seq_len}};
  if (a.method == "gptq") j["gptq"] = {{"damp", a.damp}, {"act_order", a.act_order}, {"weighted_scales", a.gptq_weighted_scales}};
  for (const auto& l : rep.layers) j["layers"].push_back(layer_json(l));
  if (!allocation.is_null()) j["allocation"] = allocation;

  if (!a.out.empty()) {
    if (is_gguf_path(a.out)) {
      ModelFile out = f;
      model.export_to(out);
      save_gguf_model(out, a.out);
    } else {
      save_quantized_hf(model, f, a.out, DType::F16);  // dense tensors (norms, embedding) in f16
    }
    note_output(j, a.out, 8.0 * bytes / double(params));
  }
  if (!a.ppl_files.empty()) {
    Transformer base(f);  // the original weights: f is untouched by quantization
    for (const std::string& text : a.ppl_files) j["evals"].push_back(evaluate_vs_base(model, base, f, text, a.p));
  }
  if (a.speed) j["bench"] = quick_bench(model);
  j["peak_rss_bytes"] = peak_rss_bytes();
  if (const std::string report = report_path(a); !report.empty()) write_text_file(report, j.dump(2) + "\n");
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* cmd = app.add_subcommand("quantize",
                                 "Quantize weights (RTN, importance-weighted RTN, GPTQ, AWQ, OneBit) into ggml block types "
                                 "or group formats, writing a GGUF or HF directory and a JSON report beside it; or weights "
                                 "and activations to int8 (W8A8: dynamic, static with an observer, SmoothQuant, LLM.int8()), "
                                 "measured in place and/or written as a HF directory (compressed-tensors int-quantized)");
  add_model_args(cmd, a->m);
  cmd->add_option("--method", a->method,
                  "Weights only: rtn | imatrix | gptq | awq | onebit (= SVID sign + rank-1 scales; --type "
                  "onebit/ternary with the other methods). Weights and activations int8 (W8A8; -o DIR writes "
                  "compressed-tensors int-quantized, LLM.int8() as per-token W8A8 + config.json "
                  "shrink_outlier_threshold, which only shrink honours): dynamic (per-token activation scales) | w8a8 (static scales from --observer on --calib) "
                  "| smoothquant (SmoothQuant smoothing with --alpha, then w8a8; --per-token for dynamic) | llm-int8 "
                  "(per-token int8, input columns with |x| >= --outlier-threshold in f32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rtn", "imatrix", "gptq", "awq", "onebit", "dynamic", "w8a8", "smoothquant", "llm-int8"}));
  cmd->add_option("--observer", a->observer,
                  "W8A8 static activation ranges: minmax | ema[:DECAY] | percentile[:P] | mse | kl (TensorRT entropy)")
      ->capture_default_str();
  cmd->add_option("--alpha", a->alpha, "SmoothQuant migration strength in [0, 1]")->capture_default_str();
  cmd->add_flag("--per-token", a->per_token, "SmoothQuant: per-token activation scales instead of static ones");
  cmd->add_flag("--alpha-search", a->search_alpha,
                "SmoothQuant: choose alpha per group (0.05..0.95) for the least W8A8 output error on calibration rows");
  cmd->add_flag("--smooth-all", a->smooth_all,
                "SmoothQuant: also smooth the inputs of o (into v) and down (into up), not only the norm-fed q/k/v "
                "and gate/up as the paper does");
  cmd->add_option("--outlier-threshold", a->outlier_threshold, "LLM.int8(): |x| at which an input column stays f32")
      ->capture_default_str();
  cmd->add_option("--type", a->type,
                  "Target: a ggml type (q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0 q3_k q2_k iq4_nl; f16/bf16) or a group "
                  "format (int4g128, int3g64sym, int8ch, nf4g64, fp4g32, fp8e4m3ch; suffix 'clip' = clipping search)");
  cmd->add_option("--preset", a->preset,
                  "A llama-quantize recipe (per-tensor type mix, same types tensor by tensor): Q4_K_M, Q4_K_S, Q5_K_M, "
                  "Q5_K_S, Q3_K_M, Q3_K_S, Q3_K_L, Q2_K, Q6_K, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0");
  cmd->add_option("--target-bpw", a->target_bpw,
                  "Mixed precision: per-Linear types (ggml Q2_K..Q8_0, or int2..int8 like --type's group format) "
                  "chosen by measured sensitivity (KL when that Linear alone is rounded) to fit this many bits per "
                  "weight over the linears; needs --calib");
  cmd->add_option("--sensitivity-tokens", a->sensitivity_tokens, "--target-bpw: calibration tokens to measure on")
      ->capture_default_str();
  cmd->add_option("--bits", a->bits, "Integer group format with this many bits (instead of --type)");
  cmd->add_option("--group", a->group, "With --bits: values per scale (0 = per channel, -1 = per tensor)")->capture_default_str();
  cmd->add_flag("--sym", a->sym, "With --bits: symmetric (no zero point)");
  cmd->add_option("--head-type", a->head_type, "Target of the output head (default: q6_k for block types, q8_0 for q8_0, int8ch for groups)");
  cmd->add_flag("--keep-head", a->keep_head, "Leave the output head unquantized");
  cmd->add_option("--embed-type", a->embed_type,
                  "ggml type of the token embedding (default as llama-quantize: the base type, the head's when tied; "
                  "unchanged for group formats)");
  cmd->add_flag("--keep-embed", a->keep_embed, "Leave the token embedding as it is");
  cmd->add_option("--calib", a->calib_file, "Calibration text (imatrix, gptq, awq, w8a8, smoothquant)")->check(CLI::ExistingFile);
  cmd->add_option("--imatrix", a->imatrix_file,
                  "--method imatrix: read the importance matrix from a llama.cpp imatrix file (.gguf or legacy .dat, "
                  "e.g. from `shrink imatrix` or llama-imatrix) instead of collecting it from --calib")
      ->check(CLI::ExistingFile);
  cmd->add_option("--calib-tokens", a->calib_tokens, "Calibration tokens to use")->capture_default_str();
  cmd->add_option("--seq-len", a->seq_len, "Calibration sequence length")->capture_default_str();
  cmd->add_option("--damp", a->damp, "GPTQ dampening (fraction of mean diag H)")->capture_default_str();
  cmd->add_flag("--act-order", a->act_order, "GPTQ: quantize columns in decreasing diag(H) order (static groups)");
  cmd->add_flag("--weighted-scales", a->gptq_weighted_scales, "GPTQ: choose block scales weighted by diag(H)");
  cmd->add_flag("--no-clip", a->no_clip, "AWQ: skip the weight clipping search");
  cmd->add_option("-o,--output", a->out,
                  "Output: FILE.gguf (ggml block types), or a directory: a Hugging Face model with group formats in "
                  "compressed-tensors pack-quantized form, W8A8 in int-quantized form (vLLM/transformers load it)");
  cmd->add_option("--report", a->report, "JSON report path (default: OUTPUT.json)");
  cmd->add_option("--ppl", a->ppl_files,
                  "After quantizing, measure perplexity, KLD and top-1 vs the original on this text (repeatable)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--bench", a->speed,
                "After quantizing, measure prefill and decode tokens/s in this process (1 thread, 16 + 32 tokens, "
                "mean of 3; \"bench\" in the report)");
  cmd->add_option("-c,--ctx", a->p.n_ctx, "--ppl window length")->capture_default_str();
  cmd->add_option("--chunks", a->p.chunks, "--ppl: first K windows only (-1 = all)")->capture_default_str();
  cmd->callback([a] { run_quantize(*a); });
}

}  // namespace shrink::cli
