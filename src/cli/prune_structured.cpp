// shrink prune MODEL --structured heads|channels|layers --ratio R --importance l1|l2|activation|taylor|block
//                    [--global] [--calib TEXT --calib-tokens N] -o OUT.gguf|DIR
// Removes whole attention heads (KV groups), FFN channels or blocks
// (compress/prune/structured.h) and writes the smaller dense model, with a JSON
// report beside it (removed groups per layer, parameters and file sizes).
#include "cli/prune_structured.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "compress/prune/structured.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/file.h"

namespace shrink::cli {

namespace {

bool needs_calib(prune::Importance i) { return i != prune::Importance::L1 && i != prune::Importance::L2; }

prune::LayerScores score(const ModelFile& f, prune::StructKind kind, prune::Importance imp,
                         const calib::CalibSet& calib) {
  using prune::Importance;
  const double t0 = now_seconds();
  auto done = [&](const prune::LayerScores& s) {
    progress_line(std::string("importance ") + prune::importance_name(imp) + " done in " +
                      std::to_string(int(now_seconds() - t0)) + " s",
                  true);
    return s;
  };
  if (imp == Importance::L1 || imp == Importance::L2) return done(prune::weight_norm_scores(f, kind, imp));
  if (imp == Importance::Taylor)
    return done(prune::taylor_scores(f, calib, kind, [&](int s, int n) {
      progress_line("taylor: gradients of sequence " + std::to_string(s) + "/" + std::to_string(n) + " (" +
                    std::to_string(int(now_seconds() - t0)) + " s)");
    }));
  Transformer model(f);
  if (imp == Importance::Block) return done(prune::block_influence(model, calib));
  return done(prune::activation_scores(model, calib, kind));
}

nlohmann::json layer_rows(const ModelConfig& before, const prune::StructuredPlan& plan, const prune::LayerScores& s) {
  nlohmann::json rows = nlohmann::json::array();
  for (int l = 0; l < before.n_layers; ++l) {
    nlohmann::json r = {{"layer", l}, {"removed", plan.removed[l]}};
    if (plan.kind == prune::StructKind::Layers) {
      r["block_influence"] = s[l][0];
      r["removed"] = !plan.removed[l].empty();
    } else {
      const int n = prune::group_count(before, plan.kind, l), kept = n - int(plan.removed[l].size());
      r["groups_before"] = n, r["groups_after"] = kept;
      if (plan.kind == prune::StructKind::Heads) {
        const int ratio = before.heads(l) / before.kv_heads(l);
        r["heads_after"] = kept * ratio, r["kv_heads_after"] = kept;
      } else {
        r["ffn_after"] = kept;
      }
    }
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

void add_structured_options(CLI::App* cmd, StructuredArgs& a) {
  cmd->add_option("--structured", a.structure,
                  "Remove whole groups instead of zeroing weights: heads (a KV group: its k/v rows, the rows of the "
                  "query heads sharing it, their wo columns), channels (a row of gate and up, a column of down) or "
                  "layers (whole blocks). Writes a smaller dense model")
      ->check(CLI::IsMember({"heads", "channels", "layers"}));
  cmd->add_option("--ratio", a.ratio,
                  "--structured: fraction of the prunable parameters to remove (those of all heads, of all FFN "
                  "channels, or of all blocks); layers: round(R x layers) blocks");
  cmd->add_option("--importance", a.importance,
                  "--structured: l1 | l2 (norm of the group's weights) | activation (mean |output| on --calib) | "
                  "taylor (sum |w * dL/dw| on --calib) | block (layers: 1 - cos(block input, output) on "
                  "--calib). Default: l2, block for layers")
      ->check(CLI::IsMember({"l1", "l2", "activation", "taylor", "block"}));
  cmd->add_option("--multiple-of", a.multiple_of,
                  "--structured: remove more until every layer keeps a multiple of N groups (channels: 32 for "
                  "Q4_0/Q8_0, 256 for K-quants to quantize the result; overshoots --ratio)")
      ->capture_default_str();
  cmd->add_option("--remove-layers", a.remove_layers, "--structured layers: remove this many blocks (instead of --ratio)");
}

void run_structured_prune(const ModelArgs& m, const StructuredArgs& a) {
  const prune::StructKind kind = prune::parse_struct_kind(a.structure);
  const bool layers = kind == prune::StructKind::Layers;
  const prune::Importance imp = prune::parse_importance(a.importance.empty() ? (layers ? "block" : "l2") : a.importance);
  SHRINK_CHECK(layers == (imp == prune::Importance::Block), layers ? "--structured layers ranks blocks by --importance block"
                                                                  : "--importance block is for --structured layers");
  SHRINK_CHECK(a.ratio >= 0 || (layers && a.remove_layers >= 0), "give --ratio R (0 <= R < 1)",
               layers ? " or --remove-layers N" : "");
  SHRINK_CHECK(a.ratio < 1, "--ratio must be below 1, got ", a.ratio);
  SHRINK_CHECK(!needs_calib(imp) || !a.calib_file.empty(), "--importance ", prune::importance_name(imp),
               " needs calibration text (--calib FILE)");
  SHRINK_CHECK(!a.out.empty(), "give -o OUT (FILE.gguf or a directory for a Hugging Face model)");
  ModelFile f = open_model(m, needs_calib(imp));
  calib::CalibSet calib;
  if (needs_calib(imp)) {
    calib = calib::make_calib_set(*f.tokenizer, read_text_file(a.calib_file), a.calib_tokens, a.seq_len);
    std::fprintf(stderr, "calibration: %zu sequences of %d tokens from %s\n", calib.seqs.size(), a.seq_len,
                 a.calib_file.c_str());
  }
  const double t0 = now_seconds();
  const prune::LayerScores scores = score(f, kind, imp, calib);
  prune::StructuredPlan plan =
      prune::plan_removal(f.config, kind, scores, a.ratio < 0 ? 0.0 : a.ratio, a.global, a.remove_layers);
  prune::round_kept_groups(f.config, scores, a.multiple_of, plan);
  const ModelFile out = prune::remove_groups(f, plan);
  if (is_gguf_path(a.out)) {
    save_gguf_model(out, a.out);
  } else {
    save_hf(out, a.out, out.get("blk.0.ffn_down.weight").dtype);
  }
  const int64_t before = f.config.parameter_count(), after = out.config.parameter_count();
  nlohmann::json j = {{"model", m.model}, {"structured", a.structure}, {"importance", prune::importance_name(imp)},
                      {"ratio", a.ratio}, {"global", a.global}, {"params_before", before}, {"params_after", after},
                      {"prunable_params", plan.prunable_params}, {"removed_params", plan.removed_params},
                      {"removed_share_of_prunable", plan.prunable_params ? double(plan.removed_params) / double(plan.prunable_params) : 0.0},
                      {"removed_share_of_model", double(before - after) / double(before)},
                      {"removed_groups", plan.removed_groups()}, {"config_after", out.config.summary()},
                      {"layers", layer_rows(f.config, plan, scores)}, {"input_bytes", path_bytes(m.model)},
                      {"output", a.out}, {"file_bytes", path_bytes(a.out)}, {"seconds", now_seconds() - t0},
                      {"peak_rss_bytes", peak_rss_bytes()}};
  if (layers && a.remove_layers >= 0) j["remove_layers"] = a.remove_layers;
  if (a.multiple_of > 1) j["multiple_of"] = a.multiple_of;
  if (!calib.seqs.empty()) j["calib"] = {{"file", a.calib_file}, {"tokens", calib.tokens()}, {"seq_len", a.seq_len}};
  std::printf("wrote %s (%s): %lld -> %lld parameters (%.1f%% of the model, %.1f%% of its %s removed)\n", a.out.c_str(),
              human_bytes(double(j["file_bytes"].get<int64_t>())).c_str(), (long long)before, (long long)after,
              100.0 * double(before - after) / double(before), 100.0 * j["removed_share_of_prunable"].get<double>(),
              layers ? "blocks" : kind == prune::StructKind::Heads ? "attention" : "FFN");
  const std::string report = !a.report.empty()       ? a.report
                             : is_gguf_path(a.out) ? a.out + ".json"
                                                     : a.out + "/shrink_prune_report.json";
  write_text_file(report, j.dump(2) + "\n");
}

}  // namespace shrink::cli
