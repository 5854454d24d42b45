// Unstructured and N:M pruning of a whole model (issue 5): the block Linears
// (attention q/k/v/o, MLP gate/up/down) get zeros; the token embedding and
// the output head are never pruned (their rows are looked up / produce every
// logit, and the papers leave them dense too).
//   magnitude  zero the smallest |W| (Han et al. 2015): over each layer, or with
//              `global` over all block Linears at once; no data needed
//   wanda      zero the smallest |W_ij| * ||X_j||_2 within each output row
//              (Sun, Liu, Bair, Kolter 2023, "A Simple and Effective Pruning
//              Approach for Large Language Models", eq. 1 and §3 "comparison group")
//   sparsegpt  compress/prune/sparsegpt.h (Frantar & Alistarh 2023)
// With calibration data every method runs on the calibration driver
// (compress/calib), so each group sees the inputs produced by the already
// pruned groups before it, and every layer's output error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ)
// is reported (for magnitude too: that is what explains the methods' ordering).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/calib/calib.h"
#include "compress/prune/mask.h"
#include "compress/prune/sparsegpt.h"
#include "model/transformer.h"

namespace shrink::prune {

struct PruneOptions {
  std::string method = "magnitude";  // magnitude | wanda | sparsegpt
  SparsityPattern pattern;
  bool global = false;  // magnitude, unstructured: one threshold over every block Linear
  SparseGptOptions sparsegpt;
};

struct PruneLayerReport {
  std::string name;
  int64_t rows = 0, cols = 0;
  double sparsity = 0;         // achieved: fraction of exact zeros
  double weight_rel_err = 0;   // ||W - W'||² / ||W||²
  double output_rel_err = -1;  // tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) with calibration data, else -1
  double seconds = 0;
  // Measurements that explain the methods' ordering (docs/pruning.md):
  double max_row_sparsity = 0;     // the most-pruned output row's fraction of zeros
  double magnitude_overlap = -1;   // share of the pruned weights that magnitude (same pattern) would prune too
  double input_norm_spread = -1;   // max / median of the input columns' ||X_j|| (Wanda's weighting), with data
};

struct PruneReport {
  std::vector<PruneLayerReport> layers;
  int64_t calib_tokens = 0;
  int64_t pruned_params = 0, zeros = 0;  // over the pruned Linears
  double seconds = 0;
};

using PruneProgress = std::function<void(int layer, int n_layers, const std::string& what)>;

// Checks the method/pattern combination; throws with a message a user can act on.
void check_options(const PruneOptions& opt, bool have_calib);

// Prunes the block Linears of the model in place (calib may be empty for magnitude).
PruneReport prune_model(Transformer& model, const calib::CalibSet& calib, const PruneOptions& opt,
                        const PruneProgress& progress = {});

// One Linear's weight pruned by magnitude or Wanda: `col_sq` is each input
// column's mean x² (Wanda; null for magnitude). w: f32 {rows, cols}.
Tensor prune_by_score(const Tensor& w, const float* col_sq, const SparsityPattern& p, MaskScope scope);

}  // namespace shrink::prune
