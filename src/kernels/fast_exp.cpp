#include "kernels/fast_exp.h"

#include <algorithm>
#include <cmath>

namespace shrink::kernels {

// fast_exp_avx512.cpp (called only when the CPU has AVX-512F).
float exp_shifted_avx512(const float* x, float* out, int64_t n, float* max_out);
void scale_avx512(float* x, int64_t n, float k);
void silu_mul_avx512(float* gate, const float* up, int64_t n);

namespace {

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return yes;
}

// The scalar reference: out[i] = exp(x[i] − max) (out may be x, or null); returns Σ.
float exp_shifted_scalar(const float* x, float* out, int64_t n, float* max_out) {
  const float mx = *std::max_element(x, x + n);
  *max_out = mx;
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float e = exp_approx(x[i] - mx);
    sum += e;
    if (out) out[i] = e;
  }
  return sum;
}

}  // namespace

void softmax_fast_scalar(float* x, int64_t n) {
  float mx;
  const float inv = 1.0f / exp_shifted_scalar(x, x, n, &mx);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

double log_sum_exp_fast_scalar(const float* x, int64_t n) {
  float mx;
  const float sum = exp_shifted_scalar(x, nullptr, n, &mx);
  return double(mx) + std::log(double(sum));
}

void silu_mul_fast_scalar(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + exp_approx(-gate[i])) * up[i];
}

void silu_mul_fast(float* gate, const float* up, int64_t n) {
  if (!has_avx512()) return silu_mul_fast_scalar(gate, up, n);
  silu_mul_avx512(gate, up, n);
}

void softmax_fast(float* x, int64_t n) {
  if (!has_avx512()) return softmax_fast_scalar(x, n);
  float mx;
  scale_avx512(x, n, 1.0f / exp_shifted_avx512(x, x, n, &mx));
}

double log_sum_exp_fast(const float* x, int64_t n) {
  if (!has_avx512()) return log_sum_exp_fast_scalar(x, n);
  float mx;
  const float sum = exp_shifted_avx512(x, nullptr, n, &mx);
  return double(mx) + std::log(double(sum));
}

}  // namespace shrink::kernels
