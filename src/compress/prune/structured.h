// Structured pruning: removes whole attention heads, MLP channels or blocks,
// so the result is a smaller *dense* model (per-layer sizes may differ:
// ModelConfig::layer_heads / layer_kv_heads / layer_hidden). docs/pruning.md,
// "Structured pruning".
//
// Groups that must go together (the dependency "discovery" of LLM-Pruner, Ma
// et al. 2023, and DepGraph, Fang et al. 2023, worked out by hand for the two
// architectures shrink runs):
//   head    (Llama) one KV group g: rows of k and v for KV head g, the rows of
//           wq for all n_heads/n_kv_heads query heads that share it, and their
//           columns in wo (+ q/k/v bias entries). With MHA this is one head.
//           Removing whole KV groups keeps every layer's GQA ratio, so the
//           attention kernel and the KV cache need no new case; pruning query
//           heads inside a group would keep the KV cache as it is and save less.
//           (GPT-2) one head: its q, k and v rows of the fused attn_qkv (+ bias)
//           and its columns of wo.
//   channel one row of w_gate and w_up and one column of w_down (GPT-2: a row
//           of w_up, its bias entry, and a column of w_down).
//   layer   a whole block; the blocks after it are renumbered.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/calib/calib.h"
#include "io/model_file.h"

namespace shrink::prune {

enum class StructKind { Heads, Channels, Layers };
StructKind parse_struct_kind(const std::string& s);  // heads | channels | layers
const char* struct_kind_name(StructKind k);

enum class Importance { L1, L2, Activation, Taylor, Block };
Importance parse_importance(const std::string& s);  // l1 | l2 | activation | taylor | block
const char* importance_name(Importance i);

// Scores of the groups of each layer, scores[layer][group]; higher = keep. For
// StructKind::Layers one score per layer (scores[layer] = {s}).
using LayerScores = std::vector<std::vector<double>>;

int group_count(const ModelConfig& c, StructKind k, int layer);  // heads: KV groups; channels: FFN width; layers: 1
int64_t group_params(const ModelConfig& c, StructKind k, int layer);  // parameters one group of that layer holds

struct StructuredPlan {
  StructKind kind = StructKind::Heads;
  std::vector<std::vector<int>> removed;  // per layer, the group indices to remove (sorted)
  int64_t prunable_params = 0;            // parameters of all groups of this kind
  int64_t removed_params = 0;
  int removed_groups() const;
};

// Which groups to remove so that `ratio` of the prunable parameters go.
// Uniform (default): every layer loses floor(ratio x its groups), and the
// remainder of the target goes as at most one more group per layer (layers with
// the least important next candidate first), so 10% of a model whose layers have
// 4 KV groups removes 10%, not 0 or 25%. Global: the
// groups of all layers are ranked together on scores divided by their layer's
// mean score (so a score says "how important within its layer"; raw Taylor and
// activation scores differ by orders of magnitude between layers), lowest first.
// Every layer keeps at least one group (heads/channels). Layers: the
// round(ratio x n_layers) lowest-scoring blocks, or `n_layers_to_remove` when >= 0.
StructuredPlan plan_removal(const ModelConfig& c, StructKind k, const LayerScores& scores, double ratio, bool global,
                            int n_layers_to_remove = -1);

// Removes more of each layer's lowest-scored groups until its kept count is a
// multiple of `multiple` (at least `multiple`): FFN widths that block
// quantizers can split (32 for Q4_0/Q8_0, 256 for K-quants). Overshoots the ratio.
void round_kept_groups(const ModelConfig& c, const LayerScores& scores, int multiple, StructuredPlan& plan);

// The model without the plan's groups: dense tensors sliced (F32/F16/BF16 kept
// in their dtype), the config's per-layer sizes set, blocks renumbered after
// layer removal. Throws for block-quantized, packed, W8A8 or low-rank linears.
ModelFile remove_groups(const ModelFile& in, const StructuredPlan& plan);

// ---- importance (structured_importance.cpp) ----

// L1 / L2 norm of all the weights a group removes (biases left out).
LayerScores weight_norm_scores(const ModelFile& m, StructKind k, Importance norm);
// Mean |activation| on calibration data: of each FFN channel (the input of
// w_down), of each head's output (the input of wo, averaged over the group's
// query heads' dimensions). Runs the calibration driver.
LayerScores activation_scores(Transformer& model, const calib::CalibSet& calib, StructKind k);
// First-order Taylor (LLM-Pruner's element-wise first order, summed over the
// group): sum |w * dL/dw|, the gradient of the next-token cross-entropy summed
// over the calibration sequences (train/llama_graph.h). Llama only.
LayerScores taylor_scores(const ModelFile& m, const calib::CalibSet& calib, StructKind k,
                          const std::function<void(int, int)>& progress = {});
// Block Influence (ShortGPT, Men et al. 2024): 1 - mean over calibration
// tokens of cos(hidden state into block l, hidden state out of it).
LayerScores block_influence(Transformer& model, const calib::CalibSet& calib);

}  // namespace shrink::prune
