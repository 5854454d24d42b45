#include "compress/prune/gradual.h"

#include <cmath>
#include <cstdlib>

#include "compress/prune/mask.h"
#include "core/error.h"

namespace shrink::prune {

void GradualPruneOptions::validate() const {
  SHRINK_CHECK(target > 0 && target < 1, "gradual pruning: the target sparsity must be in (0, 1), got ", target);
  SHRINK_CHECK(initial >= 0 && initial <= target, "gradual pruning: the initial sparsity must be in [0, target], got ",
               initial);
  SHRINK_CHECK(every >= 1, "gradual pruning: the pruning interval must be at least one step");
  // initial == target: one-shot at `start`, then training with the mask held (end may equal start).
  SHRINK_CHECK(start >= 0 && (end > start || (end == start && initial == target)),
               "gradual pruning: need 0 <= start < end, got start ", start, ", end ", end);
  SHRINK_CHECK((end - start) % every == 0, "gradual pruning: end - start (", end - start,
               ") must be a multiple of the interval ", every);
}

double agp_sparsity(const GradualPruneOptions& o, int64_t step) {
  if (step < o.start) return 0.0;  // dense until the first pruning step
  if (step >= o.end) return o.target;
  if (o.initial == o.target) return o.target;
  const int64_t last = o.start + (step - o.start) / o.every * o.every;
  const double progress = double(last - o.start) / double(o.end - o.start);
  const double remaining = 1.0 - progress;
  return o.target + (o.initial - o.target) * remaining * remaining * remaining;
}

bool agp_is_pruning_step(const GradualPruneOptions& o, int64_t step) {
  return step >= o.start && step <= o.end && (step - o.start) % o.every == 0;
}

GradualPruner::GradualPruner(std::vector<train::Parameter*> weights, GradualPruneOptions opts)
    : weights_(std::move(weights)), opts_(opts) {
  opts_.validate();
  for (const train::Parameter* p : weights_)
    SHRINK_CHECK(p && p->value.shape.size() == 2 && p->value.dtype == DType::F32, "gradual pruning: ",
                 p ? p->name : "(null)", " is not a 2-D f32 weight");
}

void GradualPruner::remask(double ratio) {
  masks_.assign(weights_.size(), {});
  if (ratio <= 0) return;
  SparsityPattern pattern;
  pattern.ratio = ratio;
  for (size_t i = 0; i < weights_.size(); ++i) {
    const Tensor& w = weights_[i]->value;
    const float* v = w.ptr<float>();
    std::vector<float> score(size_t(w.numel()));
    for (size_t j = 0; j < score.size(); ++j) score[j] = std::fabs(v[j]);
    masks_[i] = select_mask(score.data(), w.rows(), w.cols(), pattern, MaskScope::Layer);
  }
}

void GradualPruner::after_update(int64_t step) {
  if (agp_is_pruning_step(opts_, step)) {
    current_ = agp_sparsity(opts_, step);
    remask(current_);
  } else if (masks_.empty()) {  // resumed between pruning steps: the zeros are the mask
    current_ = agp_sparsity(opts_, step);
    masks_.resize(weights_.size());
    if (step > opts_.start)
      for (size_t i = 0; i < weights_.size(); ++i) {
        const Tensor& w = weights_[i]->value;
        const float* v = w.ptr<float>();
        masks_[i].resize(size_t(w.numel()));
        for (size_t j = 0; j < masks_[i].size(); ++j) masks_[i][j] = v[j] == 0.0f;
      }
  }
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (masks_[i].empty()) continue;
    float* v = weights_[i]->value.ptr<float>();
    const uint8_t* m = masks_[i].data();
    for (size_t j = 0; j < masks_[i].size(); ++j)
      if (m[j]) v[j] = 0.0f;
  }
}

}  // namespace shrink::prune
