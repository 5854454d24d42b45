#include "compress/actquant/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "compress/calib/fold.h"
#include "compress/calib/stats.h"
#include "core/error.h"

namespace shrink::actquant {

std::vector<float> smoothing_scales(const std::vector<float>& act_max, const std::vector<const Tensor*>& weights,
                                    float alpha) {
  const int64_t cols = static_cast<int64_t>(act_max.size());
  std::vector<float> w_max(act_max.size(), 0.0f), s(act_max.size(), 1.0f);
  for (const Tensor* w : weights) {
    SHRINK_CHECK(w->dtype == DType::F32 && w->dim(1) == cols, "smoothing_scales: weights must be f32 {out, ", cols, "}");
    for (int64_t r = 0; r < w->dim(0); ++r)
      for (int64_t j = 0; j < cols; ++j) w_max[j] = std::max(w_max[j], std::fabs(w->f32()[r * cols + j]));
  }
  for (int64_t j = 0; j < cols; ++j) {
    if (act_max[j] <= 0 || w_max[j] <= 0) continue;  // nothing to migrate
    // The reference clamps both maxima at 1e-5 before the powers.
    const double a = std::max(act_max[j], 1e-5f), w = std::max(w_max[j], 1e-5f);
    s[j] = static_cast<float>(std::pow(a, double(alpha)) / std::pow(w, 1.0 - alpha));
  }
  return s;
}

namespace {

class SmoothMethod : public calib::BlockMethod {
 public:
  SmoothMethod(const SmoothOptions& opt, std::vector<SmoothedGroup>& out) : opt_(opt), out_(out) {}

  void begin_group(Transformer& model, int layer, const std::vector<Linear*>& group) override {
    first_ = group.front();
    const calib::Producer p = calib::producer_of(model, layer, group);
    active_ = p == calib::Producer::Norm || (opt_.all_groups && p == calib::Producer::Linear);
    stats_ = calib::ColumnStats(active_ ? first_->in_features() : 0);
  }
  void observe(const Linear& l, const float* x, int64_t n) override {
    if (active_ && &l == first_) stats_.add(x, n);
  }
  void rewrite(Transformer& model, int layer, const std::vector<Linear*>& group) override {
    if (!active_) return;
    std::vector<const Tensor*> ws;
    for (Linear* l : group) ws.push_back(&f32_of_(*l));
    const std::vector<float> s = smoothing_scales(stats_.max_abs, ws, opt_.alpha);
    SmoothedGroup g;
    g.first = first_->name();
    g.s_min = *std::min_element(s.begin(), s.end()), g.s_max = *std::max_element(s.begin(), s.end());
    for (size_t j = 0; j < s.size(); ++j)
      g.act_max_before = std::max(g.act_max_before, stats_.max_abs[j]),
      g.act_max_after = std::max(g.act_max_after, stats_.max_abs[j] / s[j]);
    calib::fold_input_scale(model, layer, group, s, f32_of_);
    out_.push_back(g);
  }

 private:
  const SmoothOptions& opt_;
  std::vector<SmoothedGroup>& out_;
  calib::F32Of f32_of_ = calib::dense_f32_of();
  const Linear* first_ = nullptr;
  bool active_ = false;
  calib::ColumnStats stats_;
};

}  // namespace

std::vector<SmoothedGroup> smooth_model(Transformer& model, const calib::CalibSet& calib, const SmoothOptions& opt,
                                        const calib::DriverOptions& dopt) {
  SHRINK_CHECK(!calib.seqs.empty(), "SmoothQuant needs calibration text (--calib)");
  SHRINK_CHECK(opt.alpha >= 0 && opt.alpha <= 1, "SmoothQuant alpha must be in [0, 1], got ", opt.alpha);
  std::vector<SmoothedGroup> out;
  SmoothMethod m(opt, out);
  calib::run_blockwise(model, calib, m, dopt);
  return out;
}

}  // namespace shrink::actquant
