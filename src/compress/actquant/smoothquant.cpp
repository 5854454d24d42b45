#include "compress/actquant/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "compress/calib/fold.h"
#include "compress/calib/stats.h"
#include "core/error.h"
#include "kernels/gemv.h"

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

// Rounds every row of m {rows, cols} to int8 with its own absmax scale (or, with
// per_tensor, one scale for the whole matrix), in place.
void fake_int8(float* m, int64_t rows, int64_t cols, bool per_tensor) {
  float all = 0;
  if (per_tensor)
    for (int64_t i = 0; i < rows * cols; ++i) all = std::max(all, std::fabs(m[i]));
  for (int64_t r = 0; r < rows; ++r) {
    float* x = m + r * cols;
    float amax = all;
    if (!per_tensor)
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[c]));
    if (amax == 0) continue;
    const float d = amax / 127, id = 1 / d;
    for (int64_t c = 0; c < cols; ++c) x[c] = std::nearbyint(x[c] * id) * d;
  }
}

// Squared output error of the group under W8A8 rounding after smoothing by s,
// on the sampled rows x {n, cols}, against the float outputs ref.
double w8a8_loss(const std::vector<float>& x, int64_t n, const std::vector<const Tensor*>& ws, const std::vector<float>& s,
                 const std::vector<std::vector<float>>& ref) {
  const int64_t cols = static_cast<int64_t>(s.size());
  std::vector<float> xs(x);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < cols; ++j) xs[size_t(i * cols + j)] /= s[size_t(j)];
  fake_int8(xs.data(), n, cols, true);
  double loss = 0;
  for (size_t g = 0; g < ws.size(); ++g) {
    const int64_t rows = ws[g]->dim(0);
    std::vector<float> w(ws[g]->f32(), ws[g]->f32() + rows * cols), y(size_t(n * rows));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) w[size_t(r * cols + j)] *= s[size_t(j)];
    fake_int8(w.data(), rows, cols, false);
    kernels::matmul(DType::F32, w.data(), xs.data(), y.data(), n, rows, cols);
    for (size_t i = 0; i < y.size(); ++i) loss += double(y[i] - ref[g][i]) * (y[i] - ref[g][i]);
  }
  return loss;
}

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
    if (!active_ || &l != first_) return;
    stats_.add(x, n);
    if (!opt_.search_alpha) return;
    const int64_t cols = l.in_features();
    for (int64_t t = 0; t < n && int64_t(sample_.size()) < opt_.sample_rows * cols; ++t)
      if ((seen_ + t) % stride_ == 0) sample_.insert(sample_.end(), x + t * cols, x + (t + 1) * cols);
    seen_ += n;
  }
  void rewrite(Transformer& model, int layer, const std::vector<Linear*>& group) override {
    if (!active_) return;
    std::vector<const Tensor*> ws;
    for (Linear* l : group) ws.push_back(&f32_of_(*l));
    float alpha = opt_.alpha;
    if (opt_.search_alpha) alpha = search(ws);
    const std::vector<float> s = smoothing_scales(stats_.max_abs, ws, alpha);
    SmoothedGroup g;
    g.first = first_->name();
    g.alpha = alpha;
    g.s_min = *std::min_element(s.begin(), s.end()), g.s_max = *std::max_element(s.begin(), s.end());
    for (size_t j = 0; j < s.size(); ++j)
      g.act_max_before = std::max(g.act_max_before, stats_.max_abs[j]),
      g.act_max_after = std::max(g.act_max_after, stats_.max_abs[j] / s[j]);
    calib::fold_input_scale(model, layer, group, s, f32_of_);
    out_.push_back(g);
    sample_.clear(), seen_ = 0;
  }
  void set_stride(int64_t calib_tokens) { stride_ = std::max<int64_t>(1, calib_tokens / opt_.sample_rows); }

 private:
  float search(const std::vector<const Tensor*>& ws) const {
    const int64_t cols = first_->in_features(), n = int64_t(sample_.size()) / cols;
    std::vector<std::vector<float>> ref;
    for (const Tensor* w : ws) {
      ref.emplace_back(size_t(n * w->dim(0)));
      kernels::matmul(DType::F32, w->f32(), sample_.data(), ref.back().data(), n, w->dim(0), cols);
    }
    float best = opt_.alpha;
    double best_loss = -1;
    for (int k = 0; k < 10; ++k) {
      const float a = 0.05f + 0.1f * float(k);
      const double loss = w8a8_loss(sample_, n, ws, smoothing_scales(stats_.max_abs, ws, a), ref);
      if (best_loss < 0 || loss < best_loss) best_loss = loss, best = a;
    }
    return best;
  }

  const SmoothOptions& opt_;
  std::vector<SmoothedGroup>& out_;
  calib::F32Of f32_of_ = calib::dense_f32_of();
  const Linear* first_ = nullptr;
  bool active_ = false;
  calib::ColumnStats stats_;
  std::vector<float> sample_;  // kept calibration rows (search_alpha)
  int64_t seen_ = 0, stride_ = 1;
};

}  // namespace

std::vector<SmoothedGroup> smooth_model(Transformer& model, const calib::CalibSet& calib, const SmoothOptions& opt,
                                        const calib::DriverOptions& dopt) {
  SHRINK_CHECK(!calib.seqs.empty(), "SmoothQuant needs calibration text (--calib)");
  SHRINK_CHECK(opt.alpha >= 0 && opt.alpha <= 1, "SmoothQuant alpha must be in [0, 1], got ", opt.alpha);
  std::vector<SmoothedGroup> out;
  SmoothMethod m(opt, out);
  m.set_stride(calib.tokens());
  calib::run_blockwise(model, calib, m, dopt);
  return out;
}

}  // namespace shrink::actquant
