#include "train/losses.h"

#include <cmath>

#include "core/error.h"
#include "kernels/fast_exp.h"
#include "kernels/ops.h"
#include "train/ops.h"

namespace shrink::train {

namespace {
// log-softmax of row x[n] / T in double (the losses are differences of logs).
void log_softmax(const float* x, int64_t n, float T, std::vector<double>& out) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp((x[i] - mx) / T);
  const double lse = std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - mx) / T - lse;
}
void check_distill_inputs(Var student, Var teacher, float T, const char* what) {
  SHRINK_CHECK(student->value.shape == teacher->value.shape, what, ": student ", shape_str(student->value.shape),
               " and teacher ", shape_str(teacher->value.shape), " logits differ");
  SHRINK_CHECK(!teacher->requires_grad, what, ": the teacher's logits must be a constant");
  SHRINK_CHECK(T > 0, what, ": temperature ", T, " must be positive");
}

// A divergence between the temperature-T softmaxes of the student's and the
// teacher's rows, defined by two per-row functions of their log-probabilities
// (ls, lt): `value` returns the row's divergence, `grad_p` writes dD/dp_s (the
// derivative with respect to the student's probabilities). The loss is the
// mean over rows × T²; the backward maps dD/dp_s through the softmax Jacobian:
// dD/du_i = p_i (g_i − Σ_j p_j g_j) for u = z / T, then dz = du / T.
template <typename Value, typename GradP>
Var row_divergence(Var student, Var teacher, float T, Value value, GradP grad_p) {
  const int64_t n = student->rows(), V = student->cols();
  std::vector<double> ls(V), lt(V);
  double total = 0;
  for (int64_t t = 0; t < n; ++t) {
    log_softmax(student->v() + t * V, V, T, ls);
    log_softmax(teacher->v() + t * V, V, T, lt);
    total += value(ls, lt);
  }
  Var y = student->graph->make(Tensor::alloc(DType::F32, {1}), {student, teacher});
  y->v()[0] = float(total * T * T / n);
  if (y->requires_grad)
    y->backward = [=] {
      const double k = double(y->g()[0]) * T / n;
      std::vector<double> ps(V), pt(V), g(V);
      for (int64_t t = 0; t < n; ++t) {
        log_softmax(student->v() + t * V, V, T, ps);
        log_softmax(teacher->v() + t * V, V, T, pt);
        grad_p(ps, pt, g);
        double mean = 0;
        for (int64_t j = 0; j < V; ++j) mean += std::exp(ps[j]) * g[j];
        for (int64_t j = 0; j < V; ++j) student->g()[t * V + j] += float(k * std::exp(ps[j]) * (g[j] - mean));
      }
    };
  return y;
}

}  // namespace

Var cross_entropy(Var logits, const std::vector<int32_t>& targets) {
  const int64_t n = logits->rows(), V = logits->cols();
  SHRINK_CHECK(int64_t(targets.size()) == n, "cross_entropy: ", targets.size(), " targets for ", n, " rows");
  int64_t counted = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (targets[t] == kIgnoreTarget) continue;
    SHRINK_CHECK(targets[t] >= 0 && targets[t] < V, "cross_entropy: target ", targets[t], " outside the vocabulary (",
                 V, ")");
    ++counted;
  }
  // Rows in parallel, each into its own slot; summed in row order after, so
  // the loss is bit-identical at any thread count.
  std::vector<double> row_loss(n, 0.0);
#pragma omp parallel for schedule(static) if (n * V > (1 << 16))
  for (int64_t t = 0; t < n; ++t)
    if (targets[t] != kIgnoreTarget) row_loss[t] = kernels::log_sum_exp_fast(logits->v() + t * V, V) - logits->v()[t * V + targets[t]];
  double total = 0;
  for (int64_t t = 0; t < n; ++t) total += row_loss[t];
  SHRINK_CHECK(counted > 0, "cross_entropy: every target is ignored");
  Var y = logits->graph->make(Tensor::alloc(DType::F32, {1}), {logits});
  y->v()[0] = float(total / counted);
  if (y->requires_grad)
    y->backward = [=] {
      // d/dz of −log softmax(z)[target] = softmax(z) − onehot(target).
      const float k = y->g()[0] / float(counted);
#pragma omp parallel if (n * V > (1 << 16))
      {
        std::vector<float> p(V);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < n; ++t) {
          if (targets[t] == kIgnoreTarget) continue;
          std::copy(logits->v() + t * V, logits->v() + (t + 1) * V, p.begin());
          kernels::softmax_fast(p.data(), V);
          p[targets[t]] -= 1.0f;
          for (int64_t j = 0; j < V; ++j) logits->g()[t * V + j] += k * p[j];
        }
      }
    };
  return y;
}

Var kl_divergence(Var student, Var teacher, float T) {
  check_distill_inputs(student, teacher, T, "kl_divergence");
  const int64_t n = student->rows(), V = student->cols();
  std::vector<double> ls(V), lt(V);
  double total = 0;
  for (int64_t t = 0; t < n; ++t) {
    log_softmax(student->v() + t * V, V, T, ls);
    log_softmax(teacher->v() + t * V, V, T, lt);
    for (int64_t j = 0; j < V; ++j) total += std::exp(lt[j]) * (lt[j] - ls[j]);
  }
  Var y = student->graph->make(Tensor::alloc(DType::F32, {1}), {student, teacher});
  y->v()[0] = float(total * T * T / n);
  if (y->requires_grad)
    y->backward = [=] {
      // d/dz_s of T²·KL = T²·(p_s − p_t)/T, per token, over n tokens.
      const double k = double(y->g()[0]) * T / n;
      std::vector<double> ps(V), pt(V);
      for (int64_t t = 0; t < n; ++t) {
        log_softmax(student->v() + t * V, V, T, ps);
        log_softmax(teacher->v() + t * V, V, T, pt);
        for (int64_t j = 0; j < V; ++j) student->g()[t * V + j] += float(k * (std::exp(ps[j]) - std::exp(pt[j])));
      }
    };
  return y;
}

Var reverse_kl_divergence(Var student, Var teacher, float T) {
  check_distill_inputs(student, teacher, T, "reverse_kl_divergence");
  const int64_t V = student->cols();
  // KL(s ‖ t) = Σ s (ls − lt); dKL/ds_j = ls_j − lt_j + 1 (the +1 cancels in the softmax Jacobian).
  auto value = [V](const std::vector<double>& ls, const std::vector<double>& lt) {
    double kl = 0;
    for (int64_t j = 0; j < V; ++j) kl += std::exp(ls[j]) * (ls[j] - lt[j]);
    return kl;
  };
  auto grad = [V](const std::vector<double>& ls, const std::vector<double>& lt, std::vector<double>& g) {
    for (int64_t j = 0; j < V; ++j) g[j] = ls[j] - lt[j];
  };
  return row_divergence(student, teacher, T, value, grad);
}

Var generalized_jsd(Var student, Var teacher, float beta, float T) {
  check_distill_inputs(student, teacher, T, "generalized_jsd");
  SHRINK_CHECK(beta > 0 && beta < 1, "generalized_jsd: beta ", beta, " must be in (0, 1)");
  const int64_t V = student->cols();
  const double lb = std::log(double(beta)), l1b = std::log(1.0 - beta);
  // log m_j = log(β t_j + (1−β) s_j), as a log-sum-exp of the two log-probabilities.
  auto log_m = [=](double ls, double lt) {
    const double a = lb + lt, b = l1b + ls, hi = std::max(a, b);
    return hi + std::log(std::exp(a - hi) + std::exp(b - hi));
  };
  auto value = [=](const std::vector<double>& ls, const std::vector<double>& lt) {
    double d = 0;
    for (int64_t j = 0; j < V; ++j) {
      const double lm = log_m(ls[j], lt[j]);
      d += beta * std::exp(lt[j]) * (lt[j] - lm) + (1 - beta) * std::exp(ls[j]) * (ls[j] - lm);
    }
    return d;
  };
  // dJSD/ds_j = (1−β)·log(s_j / m_j): the terms through m cancel (Σ over both KLs of −w·p/m·∂m = −(1−β)).
  auto grad = [=](const std::vector<double>& ls, const std::vector<double>& lt, std::vector<double>& g) {
    for (int64_t j = 0; j < V; ++j) g[j] = (1 - beta) * (ls[j] - log_m(ls[j], lt[j]));
  };
  return row_divergence(student, teacher, T, value, grad);
}

Var distillation_loss(Var student, Var teacher, const std::vector<int32_t>& targets, const DistillLossConfig& cfg) {
  SHRINK_CHECK(cfg.alpha >= 0 && cfg.alpha <= 1, "distillation_loss: alpha ", cfg.alpha, " must be in [0, 1]");
  Var kd = nullptr;
  switch (cfg.kind) {
    case KdLoss::ForwardKl: kd = kl_divergence(student, teacher, cfg.temperature); break;
    case KdLoss::ReverseKl: kd = reverse_kl_divergence(student, teacher, cfg.temperature); break;
    case KdLoss::Jsd: kd = generalized_jsd(student, teacher, cfg.jsd_beta, cfg.temperature); break;
  }
  if (cfg.alpha == 1) return kd;
  return add(scale(kd, cfg.alpha), scale(cross_entropy(student, targets), 1 - cfg.alpha));
}

}  // namespace shrink::train
