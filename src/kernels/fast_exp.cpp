#include "kernels/fast_exp.h"

#include <algorithm>
#include <cmath>

namespace shrink::kernels {

namespace {
float row_max(const float* x, int64_t n) {
  float mx = x[0];
#pragma omp simd reduction(max : mx)
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}
}  // namespace

void softmax_fast(float* x, int64_t n) {
  const float mx = row_max(x, n);
  // A float sum per SIMD lane is vectorisable; it is exact enough for a sum of
  // terms in (0, 1] over a few thousand entries (relative error ~n·2^-24).
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    x[i] = exp_approx(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

double log_sum_exp_fast(const float* x, int64_t n) {
  const float mx = row_max(x, n);
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += exp_approx(x[i] - mx);
  return double(mx) + std::log(double(sum));
}

}  // namespace shrink::kernels
