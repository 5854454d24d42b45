// Optimizers and the pieces of a training step around them: AdamW
// (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), SGD
// with momentum, linear warmup + cosine learning-rate schedule (Loshchilov &
// Hutter 2017, SGDR, without restarts), global-norm gradient clipping. They
// update Parameter::value (the f32 master weights) from Parameter::grad and
// never clear it: zero_grad() between steps is the caller's, so gradients of
// several micro-batches can be accumulated first.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "train/autograd.h"

namespace shrink::train {

void zero_grad(const std::vector<Parameter*>& params);

// sqrt(Σ grad²) over all parameters; when above max_norm, every gradient is
// scaled by max_norm / norm. Returns the norm before clipping.
double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm);

// lr at `step` (0-based): linear from max_lr/warmup up to max_lr over the
// first `warmup` steps, then cosine down to min_lr at `total` (min_lr after).
struct LrSchedule {
  double max_lr = 1e-3, min_lr = 0;
  int64_t warmup = 0, total = 1;
  double at(int64_t step) const;
};

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

// AdamW: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², then
// θ ← θ − lr·wd·θ (decoupled, only where Parameter::decay) − lr·m̂/(sqrt(v̂)+eps)
// with bias-corrected m̂ = m/(1−β1^t), v̂ = v/(1−β2^t). State in f32.
class AdamW {
 public:
  AdamW(std::vector<Parameter*> params, AdamWConfig cfg = {});
  void step(double lr);
  int64_t steps() const { return t_; }
  // The state a checkpoint must hold to resume bit-identically: the first and
  // second moments (one vector per parameter, in the constructor's order) and
  // the step count t (bias correction depends on it).
  std::vector<std::vector<float>>& first_moments() { return m_; }
  std::vector<std::vector<float>>& second_moments() { return v_; }
  void set_steps(int64_t t) { t_ = t; }
  const AdamWConfig& config() const { return cfg_; }

 private:
  std::vector<Parameter*> params_;
  AdamWConfig cfg_;
  std::vector<std::vector<float>> m_, v_;
  int64_t t_ = 0;
};

struct SgdConfig {
  double momentum = 0.9, weight_decay = 0;  // weight decay added to the gradient (L2), where Parameter::decay
};

// SGD with momentum in PyTorch's form: b ← μ·b + g, θ ← θ − lr·b.
class Sgd {
 public:
  Sgd(std::vector<Parameter*> params, SgdConfig cfg = {});
  void step(double lr);
  // Momentum buffers (one per parameter, in the constructor's order), for checkpoints.
  std::vector<std::vector<float>>& momentum_buffers() { return buf_; }

 private:
  std::vector<Parameter*> params_;
  SgdConfig cfg_;
  std::vector<std::vector<float>> buf_;
};

// The optimizer a training run chose at run time (`--optimizer adamw|sgd`):
// one step() for the training loop, and the concrete optimizer for the
// checkpoint, which saves each one's own state.
class Optimizer {
 public:
  explicit Optimizer(AdamW a) : opt_(std::move(a)) {}
  explicit Optimizer(Sgd s) : opt_(std::move(s)) {}
  void step(double lr) {
    std::visit([lr](auto& o) { o.step(lr); }, opt_);
  }
  std::string name() const { return std::holds_alternative<AdamW>(opt_) ? "adamw" : "sgd"; }
  AdamW* adamw() { return std::get_if<AdamW>(&opt_); }  // nullptr when SGD
  Sgd* sgd() { return std::get_if<Sgd>(&opt_); }        // nullptr when AdamW

 private:
  std::variant<AdamW, Sgd> opt_;
};

}  // namespace shrink::train
