// Gradual magnitude pruning during training: the automated gradual pruner
// (AGP) of Zhu & Gupta 2017, "To prune, or not to prune" (arXiv:1710.01878),
// §3. The sparsity of every block Linear rises from s_i to s_f over n pruning
// steps Δt apart, starting at step t0, along the cubic
//     s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n Δt))³,
// fast at first while the network has redundant weights, slowly near the
// target. At each pruning step each weight matrix's mask is re-chosen by |w|
// over the matrix (layer-wise, as in the paper); after every optimizer step the
// masked weights are set back to zero, so training in between recovers the
// accuracy the last pruning step cost.
//
// Resuming: a checkpoint holds the weights with their zeros, so a fresh pruner
// called before the first update takes a matrix's mask to be its exact zeros
// until the next pruning step (a kept weight that is exactly 0.0f is the only
// way this can differ).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/autograd.h"

namespace shrink::prune {

struct GradualPruneOptions {
  double initial = 0.0, target = 0.5;  // s_i, s_f: fractions zeroed in (0, 1)
  int64_t start = 0;                   // t0: optimizer steps done before the first pruning step
  int64_t end = 0;                     // t0 + n Δt: the step at which s_f is reached
  int64_t every = 10;                  // Δt, in optimizer steps
  // initial == target is one-shot pruning at `start` followed by training
  // with the mask held (the baseline AGP is compared against).

  void validate() const;  // throws naming the bad option
};

// s_t after `step` optimizer steps: 0 before t0, s_f from `end` on, the
// cubic in between evaluated at the last pruning step at or before `step`.
double agp_sparsity(const GradualPruneOptions& o, int64_t step);
// Whether a pruning step falls on `step` (t0, t0 + Δt, ..., end).
bool agp_is_pruning_step(const GradualPruneOptions& o, int64_t step);

class GradualPruner {
 public:
  // `weights`: the matrices to prune (each a 2-D f32 parameter); they must
  // outlive the pruner.
  GradualPruner(std::vector<train::Parameter*> weights, GradualPruneOptions opts);

  // Call before the first optimizer update with the steps done so far (0, or
  // a checkpoint's), then after each update with the number of steps done:
  // re-chooses the masks on a pruning step, then zeroes every masked weight.
  void after_update(int64_t step);

  double sparsity() const { return current_; }  // the ratio of the last pruning step
  const GradualPruneOptions& options() const { return opts_; }

 private:
  void remask(double ratio);

  std::vector<train::Parameter*> weights_;
  std::vector<std::vector<uint8_t>> masks_;  // 1 = pruned; empty until the first pruning step or resume
  GradualPruneOptions opts_;
  double current_ = 0;
};

}  // namespace shrink::prune
