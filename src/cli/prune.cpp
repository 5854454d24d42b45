// shrink prune MODEL --method magnitude|wanda|sparsegpt --sparsity 0.5|2:4 [--calib FILE] -o OUT
// shrink prune MODEL --method sparsegpt --sparsity 0.5|2:4 --quant-type q4_0 --calib FILE -o OUT.gguf
//   (joint sparsity + quantization, compress/prune/sparsegpt.h: a quantized GGUF)
// shrink prune MODEL --structured heads|channels|layers --ratio R --importance ... (prune_structured.cpp)
// Unstructured and N:M pruning of the block Linears (compress/prune); the token
// embedding and the output head stay dense. Writes the pruned model dense (zeros
// kept) as GGUF (OUT.gguf) or a Hugging Face directory, progress per layer on
// stderr, and a JSON report beside the output.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/prune_structured.h"
#include "compress/prune/prune.h"
#include "compress/quant/target.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/file.h"
#include "model/sparse_mask_weight.h"
#include "model/sparse_weight.h"

namespace shrink::cli {

namespace {

struct PruneArgs {
  ModelArgs m;
  StructuredArgs st;  // --structured: prune_structured.cpp
  std::string method = "magnitude", sparsity, calib_file, out, report;
  std::string quant_type;  // SparseGPT joint sparsity + quantization target
  bool global = false, compress = false;
  float damp = 0.01f;
  int64_t block = 128;
  int64_t calib_tokens = 32768;
  int seq_len = 512;
};

nlohmann::json report_json(const PruneArgs& a, const prune::PruneOptions& opt, const prune::PruneReport& rep) {
  nlohmann::json j = {{"model", a.m.model}, {"method", a.method}, {"sparsity", opt.pattern.name()},
                      {"target_sparsity", opt.pattern.sparsity()}, {"pattern", opt.pattern.is_nm() ? "n:m" : "unstructured"},
                      {"seconds", rep.seconds}, {"pruned_params", rep.pruned_params},
                      {"achieved_sparsity", rep.pruned_params ? double(rep.zeros) / double(rep.pruned_params) : 0.0},
                      {"not_pruned", {"token_embd", "output"}}};
  if (a.method == "magnitude") j["global"] = a.global;
  if (a.method == "sparsegpt") j["sparsegpt"] = {{"damp", a.damp}, {"block", a.block}};
  if (!a.quant_type.empty()) j["joint_quant_type"] = opt.sparsegpt.quant->name();
  if (rep.calib_tokens > 0) j["calib"] = {{"file", a.calib_file}, {"tokens", rep.calib_tokens}, {"seq_len", a.seq_len}};
  double out_err = 0, w_err = 0;
  for (const auto& l : rep.layers) {
    nlohmann::json row = {{"name", l.name}, {"rows", l.rows}, {"cols", l.cols}, {"sparsity", l.sparsity},
                          {"weight_rel_err", l.weight_rel_err}, {"seconds", l.seconds}};
    if (l.output_rel_err >= 0) row["output_rel_err"] = l.output_rel_err;
    row["max_row_sparsity"] = l.max_row_sparsity;
    if (l.magnitude_overlap >= 0) row["magnitude_overlap"] = l.magnitude_overlap;
    if (l.input_norm_spread >= 0) row["input_norm_spread"] = l.input_norm_spread;
    j["layers"].push_back(row);
    out_err += l.output_rel_err, w_err += l.weight_rel_err;
  }
  if (!rep.layers.empty()) {
    j["mean_weight_rel_err"] = w_err / double(rep.layers.size());
    if (rep.layers.front().output_rel_err >= 0) j["mean_output_rel_err"] = out_err / double(rep.layers.size());
  }
  return j;
}

void run_prune(PruneArgs& a) {
  if (!a.st.structure.empty()) {
    a.st.calib_file = a.calib_file, a.st.calib_tokens = a.calib_tokens, a.st.seq_len = a.seq_len;
    a.st.out = a.out, a.st.report = a.report, a.st.global = a.global;
    SHRINK_CHECK(a.sparsity.empty(), "--sparsity is for unstructured/N:M pruning; --structured takes --ratio");
    return run_structured_prune(a.m, a.st);
  }
  SHRINK_CHECK(!a.sparsity.empty(), "give --sparsity (0.5, 50% or N:M such as 2:4), or --structured heads|channels|layers");
  SHRINK_CHECK(!a.out.empty(), "give -o OUT (FILE.gguf or a directory for a Hugging Face model)");
  prune::PruneOptions opt;
  opt.method = a.method;
  opt.pattern = prune::SparsityPattern::parse(a.sparsity);
  opt.global = a.global;
  opt.sparsegpt.damp = a.damp, opt.sparsegpt.block = a.block;
  if (!a.quant_type.empty()) {
    opt.sparsegpt.quant = quant::QuantTarget::parse(a.quant_type);
    SHRINK_CHECK(is_gguf_path(a.out) && !a.compress, "--quant-type writes a quantized GGUF: give -o OUT.gguf "
                 "(and no --compress)");
  }
  prune::check_options(opt, !a.calib_file.empty());  // before loading anything
  SHRINK_CHECK(!a.compress || is_gguf_path(a.out), "--compress needs a .gguf output (docs/pruning.md)");
  ModelFile f = open_model(a.m, !a.calib_file.empty());
  Transformer model(f);
  calib::CalibSet calib;
  if (!a.calib_file.empty()) {
    calib = calib::make_calib_set(*f.tokenizer, read_text_file(a.calib_file), a.calib_tokens, a.seq_len);
    std::fprintf(stderr, "calibration: %zu sequences of %d tokens from %s\n", calib.seqs.size(), a.seq_len,
                 a.calib_file.c_str());
  }
  const double t0 = now_seconds();
  const prune::PruneReport rep = prune::prune_model(model, calib, opt, [&](int layer, int n, const std::string& what) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s %s: layer %d/%d %s (%.0f s)", a.method.c_str(), opt.pattern.name().c_str(),
                  std::min(layer + 1, n), n, what.c_str(), now_seconds() - t0);
    progress_line(buf);
  });
  progress_line(a.method + " done in " + std::to_string(int(rep.seconds)) + " s", true);
  nlohmann::json j = report_json(a, opt, rep);

  if (a.compress && opt.pattern.is_nm()) {
    j["compressed_linears"] = compress_model_nm(model, opt.pattern.n, opt.pattern.m);
    j["compressed_format"] = opt.pattern.name() + " n:m";
  } else if (a.compress) {  // unstructured: bitmask, for the Linears sparse enough to gain from it
    j["compressed_linears"] = compress_model_mask(model);
    j["compressed_format"] = "bitmask f32";
    j["compress_min_sparsity"] = kMaskMinSparsity;
  }
  ModelFile out = f;
  model.export_to(out);
  if (is_gguf_path(a.out)) {
    save_gguf_model(out, a.out);
  } else {
    const Linear& first = *model.linears().front();
    save_hf(out, a.out, static_cast<const DenseWeight&>(first.weight()).tensor().dtype);
  }
  j["output"] = a.out;
  j["file_bytes"] = path_bytes(a.out);
  j["peak_rss_bytes"] = peak_rss_bytes();
  std::printf("wrote %s (%s; %.2f%% of the block Linears' weights are zero; embedding and head not pruned)\n",
              a.out.c_str(), human_bytes(double(j["file_bytes"].get<int64_t>())).c_str(),
              100.0 * j["achieved_sparsity"].get<double>());
  const std::string report = !a.report.empty()          ? a.report
                             : is_gguf_path(a.out) ? a.out + ".json"
                                                     : a.out + "/shrink_prune_report.json";
  write_text_file(report, j.dump(2) + "\n");
}

}  // namespace

void add_prune(CLI::App& app) {
  auto a = std::make_shared<PruneArgs>();
  auto* cmd = app.add_subcommand("prune",
                                 "Prune the block Linears (magnitude, Wanda, SparseGPT; unstructured or N:M), writing the "
                                 "dense pruned model (GGUF or HF directory) and a JSON report beside it; the token "
                                 "embedding and the output head are not pruned. With --structured, remove whole "
                                 "attention heads, FFN channels or layers instead: a smaller dense model");
  add_model_args(cmd, a->m);
  cmd->add_option("--method", a->method,
                  "magnitude (smallest |W| per layer; --global: over the model) | wanda (smallest |W|*||X|| per "
                  "output row; needs --calib) | sparsegpt (OBS reconstruction; needs --calib)")
      ->capture_default_str()
      ->check(CLI::IsMember({"magnitude", "wanda", "sparsegpt"}));
  cmd->add_option("--sparsity", a->sparsity,
                  "Fraction of weights to zero in (0, 1) (0.5 or 50%), or N:M = keep N of every M consecutive "
                  "weights of a row (2:4, 4:8)");
  cmd->add_flag("--compress", a->compress,
                "GGUF only: store the pruned Linears compressed (shrink's own convention, llama.cpp cannot read "
                "it). N:M: kept values + 2/4-bit indices. Unstructured: per-16-column bitmasks + kept f32 values, for "
                "each Linear with >= 50% zeros (below that it stays dense: the kernel would not be faster). "
                "Default: dense with zeros");
  cmd->add_flag("--global", a->global,
                "magnitude, unstructured: one threshold over all block Linears; --structured: rank groups across "
                "layers (scores divided by their layer's mean) instead of the same share per layer");
  add_structured_options(cmd, a->st);
  cmd->add_option("--calib", a->calib_file,
                  "Calibration text (wanda, sparsegpt; structured activation, taylor, block; with magnitude it only "
                  "adds each layer's output error to the report)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--calib-tokens", a->calib_tokens, "Calibration tokens to use")->capture_default_str();
  cmd->add_option("--seq-len", a->seq_len, "Calibration sequence length")->capture_default_str();
  cmd->add_option("--damp", a->damp, "SparseGPT dampening (fraction of mean diag H)")->capture_default_str();
  cmd->add_option("--quant-type", a->quant_type,
                  "sparsegpt only: joint sparsity + quantization (SparseGPT paper 3.5): round the kept weights of the "
                  "block Linears to this type in the same sweep (q4_0, q5_0, q8_0, q3_k, q6_k, or a group format such "
                  "as int4g128; not q4_1/q4_k/... whose grids have no exact 0) and write a quantized .gguf. The "
                  "embedding and output head are left as they are");
  cmd->add_option("--block", a->block, "SparseGPT lazy block width (columns)")->capture_default_str();
  cmd->add_option("-o,--output", a->out, "Output: FILE.gguf, or a directory for a Hugging Face model")->required();
  cmd->add_option("--report", a->report, "JSON report path (default: OUT.json, or OUT/shrink_prune_report.json)");
  cmd->callback([a] { run_prune(*a); });
}

}  // namespace shrink::cli
