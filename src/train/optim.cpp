#include "train/optim.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace shrink::train {

void zero_grad(const std::vector<Parameter*>& params) {
  for (Parameter* p : params) p->zero_grad();
}

double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm) {
  double ss = 0;
  for (Parameter* p : params)
    for (int64_t i = 0; i < p->numel(); ++i) ss += double(p->grad.f32()[i]) * p->grad.f32()[i];
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float k = float(max_norm / norm);
    for (Parameter* p : params)
      for (int64_t i = 0; i < p->numel(); ++i) p->grad.f32()[i] *= k;
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
    for (int64_t i = 0; i < p.numel(); ++i) {
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
    for (int64_t i = 0; i < p.numel(); ++i) {
      b[i] = mu * b[i] + g[i] + wd * w[i];
      w[i] -= float(lr) * b[i];
    }
  }
}

}  // namespace shrink::train
