#include "compress/quant/awq.h"

#include <algorithm>
#include <cmath>

#include "compress/calib/fold.h"
#include "core/cpu.h"
#include "core/error.h"
#include "kernels/gemv.h"

namespace shrink::quant {

namespace {

// y[S x out] = x[S x in] * W^T for an f32 W.
std::vector<float> outputs(const std::vector<float>& x, int64_t s, const Tensor& w) {
  std::vector<float> y(static_cast<size_t>(s * w.dim(0)));
  kernels::matmul(DType::F32, w.f32(), x.data(), y.data(), s, w.dim(0), w.dim(1));
  return y;
}

Tensor fake_quant(const QuantTarget& t, const Tensor& w) { return quantize_matrix(t, w, nullptr)->to_dense_f32(); }

}  // namespace

AwqMethod::AwqMethod(const QuantizeOptions& opt, QuantizeReport& rep, bool head, int64_t calib_tokens)
    : opt_(opt), rep_(rep), head_(head), stride_(std::max<int64_t>(1, calib_tokens / opt.awq.sample_rows)) {}

void AwqMethod::begin_group(Transformer& model, int layer, const std::vector<Linear*>& group) {
  (void)model, (void)layer;
  first_ = group.front();
  stats_ = calib::ColumnStats(first_->in_features());
  sample_.clear();
  seen_ = 0;
  for (Linear* l : group)
    if (!float_.count(l)) {
      float_[l] = l->weight().to_dense_f32();
      l->set_weight(make_weight(float_[l]));
    }
}

void AwqMethod::observe(const Linear& l, const float* x, int64_t n) {
  if (&l != first_) return;  // the group shares this input
  stats_.add(x, n);
  const int64_t cols = l.in_features();
  for (int64_t t = 0; t < n; ++t)
    if ((seen_ + t) % stride_ == 0 && int64_t(sample_.size()) < opt_.awq.sample_rows * cols)
      sample_.insert(sample_.end(), x + t * cols, x + (t + 1) * cols);
  seen_ += n;
}

void AwqMethod::search_scale(Transformer& model, int layer, const std::vector<Linear*>& group) {
  if (calib::producer_of(model, layer, group) == calib::Producer::None) return;
  const int64_t cols = first_->in_features(), s_rows = int64_t(sample_.size()) / cols;
  const std::vector<float> mean_abs = stats_.mean_abs();
  std::vector<std::vector<float>> ref;
  for (Linear* l : group) ref.push_back(outputs(sample_, s_rows, float_[l]));
  std::vector<float> best_s(static_cast<size_t>(cols), 1.0f), s(static_cast<size_t>(cols));
  double best_loss = -1, plain_loss = 0, best_alpha = 0;
  for (int a = 0; a < opt_.awq.grid; ++a) {
    const double alpha = double(a) / opt_.awq.grid;
    float lo = 1e30f, hi = 0;
    for (int64_t j = 0; j < cols; ++j) {
      s[j] = std::max(float(std::pow(double(mean_abs[j]), alpha)), 1e-4f);
      lo = std::min(lo, s[j]), hi = std::max(hi, s[j]);
    }
    const float norm = std::sqrt(lo * hi);
    for (float& v : s) v /= norm;
    double loss = 0;
    for (size_t g = 0; g < group.size(); ++g) {
      const Tensor& w = float_[group[g]];
      Tensor ws = w.to(DType::F32);
      for (int64_t r = 0; r < w.dim(0); ++r)
        for (int64_t j = 0; j < cols; ++j) ws.f32()[r * cols + j] *= s[j];
      Tensor q = fake_quant(layer_target(opt_, *group[g], false), ws);
      for (int64_t r = 0; r < w.dim(0); ++r)
        for (int64_t j = 0; j < cols; ++j) q.f32()[r * cols + j] /= s[j];
      const std::vector<float> y = outputs(sample_, s_rows, q);
      for (size_t i = 0; i < y.size(); ++i) loss += double(y[i] - ref[g][i]) * (y[i] - ref[g][i]);
    }
    if (a == 0) plain_loss = loss;
    if (best_loss < 0 || loss < best_loss) best_loss = loss, best_s = s, best_alpha = alpha;
  }
  for (Linear* l : group) chosen_[l] = {best_alpha, plain_loss > 0 ? best_loss / plain_loss : 1.0};
  calib::fold_input_scale(model, layer, group, best_s, [this](Linear& l) -> Tensor& {
    const auto it = float_.find(&l);
    SHRINK_CHECK(it != float_.end(), "AWQ: ", l.name(), " was already quantized");
    return it->second;
  });
}

void AwqMethod::clip(Linear& l, bool head) {
  Tensor& w = float_.at(&l);
  const QuantTarget t = layer_target(opt_, l, head);
  if (t.is_dense()) return;
  const int64_t rows = w.dim(0), cols = w.dim(1), chunk = t.chunk(cols), nk = (cols + chunk - 1) / chunk;
  const int64_t s_rows = std::min<int64_t>(512, int64_t(sample_.size()) / cols);
  const int n_cand = opt_.awq.grid / 2;
  std::vector<float> amax(static_cast<size_t>(rows * nk), 0.0f), best_err(amax.size(), -1.0f), best_frac(amax.size(), 1.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      amax[r * nk + c / chunk] = std::max(amax[r * nk + c / chunk], std::fabs(w.f32()[r * cols + c]));
  std::vector<float> y(static_cast<size_t>(s_rows * rows));
  for (int i = 0; i < n_cand; ++i) {
    const float frac = 1.0f - float(i) / opt_.awq.grid;
    Tensor wc = w.to(DType::F32);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const float m = amax[r * nk + c / chunk] * frac;
        float& v = wc.f32()[r * cols + c];
        v = std::clamp(v, -m, m);
      }
    Tensor d = fake_quant(t, wc);
    for (int64_t k = 0; k < rows * cols; ++k) d.f32()[k] -= w.f32()[k];
    for (int64_t k = 0; k < nk; ++k) {
      const int64_t c0 = k * chunk, n = std::min(chunk, cols - c0);
      // y[S x rows] = X[:, chunk] * D[:, chunk]^T: each row's output error from this chunk alone.
      kernels::matmul_strided(sample_.data() + c0, cols, d.f32() + c0, cols, y.data(), s_rows, rows, n);
      for (int64_t r = 0; r < rows; ++r) {
        double e = 0;
        for (int64_t tok = 0; tok < s_rows; ++tok) e += double(y[tok * rows + r]) * y[tok * rows + r];
        float& be = best_err[r * nk + k];
        if (be < 0 || e < be) be = float(e), best_frac[r * nk + k] = frac;
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float m = amax[r * nk + c / chunk] * best_frac[r * nk + c / chunk];
      float& v = w.f32()[r * cols + c];
      v = std::clamp(v, -m, m);
    }
}

void AwqMethod::finish_block(Transformer& model, int layer) {
  for (const auto& group : calib::block_groups(model, layer))
    for (Linear* l : group) {
      const double t0 = now_seconds();
      const QuantTarget t = layer_target(opt_, *l, false);
      const Tensor w = float_.at(l);
      l->set_weight(quantize_matrix(t, w, nullptr));
      rep_.layers.push_back(layer_report(*l, w, t, now_seconds() - t0));
      if (const auto it = chosen_.find(l); it != chosen_.end())
        rep_.layers.back().awq_alpha = it->second.alpha, rep_.layers.back().awq_loss_ratio = it->second.loss_ratio;
      float_.erase(l);
    }
}

void AwqMethod::rewrite(Transformer& model, int layer, const std::vector<Linear*>& group) {
  const bool head = layer == model.config().n_layers;
  if (!head) search_scale(model, layer, group);
  const Block* b = head ? nullptr : &model.block(layer);
  for (Linear* l : group) {
    const bool qk = b && (l == &b->wq || l == &b->wk || l == &b->wqkv);
    if (opt_.awq.clip && !qk) clip(*l, head);
  }
  if (head) {
    Linear* l = group.front();
    const QuantTarget t = layer_target(opt_, *l, true);
    const Tensor w = float_.at(l);
    l->set_weight(quantize_matrix(t, w, nullptr));
    rep_.layers.push_back(layer_report(*l, w, t, 0));
    float_.erase(l);
  } else if (std::find(group.begin(), group.end(), &model.block(layer).w_down) != group.end()) {
    finish_block(model, layer);
  }
}

}  // namespace shrink::quant
