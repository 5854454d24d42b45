// SmoothQuant's smoothing step (Xiao et al. 2022, "SmoothQuant: Accurate and
// Efficient Post-Training Quantization for Large Language Models", eq. 4):
// per input channel j of a Linear group, s_j = max|X_j|^alpha / max|W_j|^(1-alpha)
// (max|W_j| over every row of every Linear in the group), X / s folded into the
// norm before it, W * s. The float model computes the same function; the
// activation outliers move into the weights, which int8 per-channel scales
// absorb. As the reference code (smoothquant/smooth.py), only norm-fed groups
// are smoothed: q/k/v (fused qkv for GPT-2) and gate/up (GPT-2: fc1).
#pragma once
#include <string>
#include <vector>

#include "compress/calib/calib.h"

namespace shrink::actquant {

struct SmoothOptions {
  float alpha = 0.5f;  // migration strength: 0 = leave activations, 1 = move all of their range to W
  // Beyond the paper: also smooth o (folded into v's rows) and down (into up's
  // rows), whose inputs are not norm outputs, where the architecture allows.
  bool all_groups = false;
  // Search alpha per group on a grid (0.05, 0.15, ..., 0.95) for the least
  // output error of the group's Linears under W8A8 rounding (per-channel int8
  // weights, one absmax activation scale per tensor) on sampled calibration
  // rows, instead of one alpha for the whole model. The issue's "optionally
  // searched per layer"; the paper picks one alpha per model by hand.
  bool search_alpha = false;
  int64_t sample_rows = 2048;
};

struct SmoothedGroup {
  std::string first;        // the group's first Linear ("blk.0.attn_q")
  float act_max_before = 0;  // max over channels of max|X_j|
  float act_max_after = 0;   // ... of max|X_j| / s_j
  float s_min = 0, s_max = 0;
  float alpha = 0;  // the alpha used (searched or given)
};

// Smooths every norm-fed group of every block, in place (their weights
// become owned f32). Returns what it did per group.
std::vector<SmoothedGroup> smooth_model(Transformer& model, const calib::CalibSet& calib, const SmoothOptions& opt,
                                        const calib::DriverOptions& dopt = {});

// s_j for one group from its per-channel activation maxima and weights
// (exposed for tests). Channels never active (max|X_j| = 0) keep s_j = 1.
std::vector<float> smoothing_scales(const std::vector<float>& act_max, const std::vector<const Tensor*>& weights,
                                    float alpha);

}  // namespace shrink::actquant
