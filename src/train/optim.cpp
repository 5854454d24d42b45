#include "train/optim.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace shrink::train {

void zero_grad(const std::vector<Parameter*>& params) {
  for (Parameter* p : params) p->zero_grad();
}

namespace {
// Σ g² of one gradient in double: fixed chunks of kChunk summed in parallel,
// then the chunk sums added in order, so the result does not depend on the
// thread count (bit-identical runs at a given seed).
constexpr int64_t kChunk = 1 << 14;
double sum_squares(const float* g, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(chunks, 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += double(g[i]) * g[i];
    part[c] = s;
  }
  double ss = 0;
  for (double s : part) ss += s;
  return ss;
}
}  // namespace

double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm) {
  double ss = 0;
  for (Parameter* p : params) ss += sum_squares(p->grad.f32(), p->numel());
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float k = float(max_norm / norm);
    for (Parameter* p : params) {
      float* g = p->grad.f32();
      const int64_t n = p->numel();
#pragma omp parallel for if (n > kChunk)
      for (int64_t i = 0; i < n; ++i) g[i] *= k;
    }
  }
  return norm;
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup) return max_lr * double(step + 1) / double(warmup);
  if (step >= total) return min_lr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

namespace {
std::vector<std::vector<float>> zeros_like(const std::vector<Parameter*>& params) {
  std::vector<std::vector<float>> out;
  for (Parameter* p : params) {
    SHRINK_CHECK(!p->grad.empty() && p->grad.numel() == p->numel(), "parameter ", p->name, " has no gradient");
    out.emplace_back(p->numel(), 0.0f);
  }
  return out;
}
}  // namespace

AdamW::AdamW(std::vector<Parameter*> params, AdamWConfig cfg)
    : params_(std::move(params)), cfg_(cfg), m_(zeros_like(params_)), v_(zeros_like(params_)) {}

void AdamW::step(double lr) {
  ++t_;
  const double c1 = 1.0 - std::pow(cfg_.beta1, double(t_)), c2 = 1.0 - std::pow(cfg_.beta2, double(t_));
  const float b1 = float(cfg_.beta1), b2 = float(cfg_.beta2);
  for (size_t k = 0; k < params_.size(); ++k) {
    Parameter& p = *params_[k];
    float *w = p.value.f32(), *g = p.grad.f32(), *m = m_[k].data(), *v = v_[k].data();
    const float decay = p.decay ? float(1.0 - lr * cfg_.weight_decay) : 1.0f;
    const float step = float(lr / c1), inv_c2 = float(1.0 / c2), eps = float(cfg_.eps);
    const int64_t n = p.numel();
#pragma omp parallel for if (n > (1 << 14))
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      w[i] = w[i] * decay - step * m[i] / (std::sqrt(v[i] * inv_c2) + eps);
    }
  }
}

Sgd::Sgd(std::vector<Parameter*> params, SgdConfig cfg)
    : params_(std::move(params)), cfg_(cfg), buf_(zeros_like(params_)) {}

void Sgd::step(double lr) {
  const float mu = float(cfg_.momentum);
  for (size_t k = 0; k < params_.size(); ++k) {
    Parameter& p = *params_[k];
    float *w = p.value.f32(), *g = p.grad.f32(), *b = buf_[k].data();
    const float wd = p.decay ? float(cfg_.weight_decay) : 0.0f;
    const int64_t n = p.numel();
#pragma omp parallel for if (n > (1 << 14))
    for (int64_t i = 0; i < n; ++i) {
      b[i] = mu * b[i] + g[i] + wd * w[i];
      w[i] -= float(lr) * b[i];
    }
  }
}

}  // namespace shrink::train
