#include "train/losses.h"

#include <cmath>

#include "core/error.h"
#include "kernels/ops.h"

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
}  // namespace

Var cross_entropy(Var logits, const std::vector<int32_t>& targets) {
  const int64_t n = logits->rows(), V = logits->cols();
  SHRINK_CHECK(int64_t(targets.size()) == n, "cross_entropy: ", targets.size(), " targets for ", n, " rows");
  int64_t counted = 0;
  double total = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (targets[t] == kIgnoreTarget) continue;
    SHRINK_CHECK(targets[t] >= 0 && targets[t] < V, "cross_entropy: target ", targets[t], " outside the vocabulary (",
                 V, ")");
    total -= kernels::log_softmax_at(logits->v() + t * V, V, targets[t]);
    ++counted;
  }
  SHRINK_CHECK(counted > 0, "cross_entropy: every target is ignored");
  Var y = logits->graph->make(Tensor::alloc(DType::F32, {1}), {logits});
  y->v()[0] = float(total / counted);
  if (y->requires_grad)
    y->backward = [=] {
      // d/dz of −log softmax(z)[target] = softmax(z) − onehot(target).
      const float k = y->g()[0] / float(counted);
      std::vector<float> p(V);
      for (int64_t t = 0; t < n; ++t) {
        if (targets[t] == kIgnoreTarget) continue;
        std::copy(logits->v() + t * V, logits->v() + (t + 1) * V, p.begin());
        kernels::softmax(p.data(), V);
        p[targets[t]] -= 1.0f;
        for (int64_t j = 0; j < V; ++j) logits->g()[t * V + j] += k * p[j];
      }
    };
  return y;
}

Var kl_divergence(Var student, Var teacher, float T) {
  SHRINK_CHECK(student->value.shape == teacher->value.shape, "kl_divergence: student ",
               shape_str(student->value.shape), " and teacher ", shape_str(teacher->value.shape), " logits differ");
  SHRINK_CHECK(!teacher->requires_grad, "kl_divergence: the teacher's logits must be a constant");
  SHRINK_CHECK(T > 0, "kl_divergence: temperature ", T, " must be positive");
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

}  // namespace shrink::train
