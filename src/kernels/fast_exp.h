// A vectorisable exp and the softmax / log-sum-exp built on it, for the
// training hot loops (cross-entropy over the vocabulary, attention backward)
// and SwiGLU's silu(gate) · up, which inference and training share. std::exp
// is a libm call per element (~7 ns: a decode token of llama-500m spent 3% of
// its time in it); exp_approx is plain arithmetic, and fast_exp_avx512.cpp
// does the same 16 lanes at a time. Decode attention uses softmax_fast too
// (attend_row in ops.cpp and attention_q8.cpp); prefill and the rest of inference keep
// kernels::softmax (std::exp).
#pragma once
#include <cstdint>
#include <cstring>

namespace shrink::kernels {

namespace fast_exp_detail {
// e^x = 2^fn · e^r with r = x − fn·ln2 (fn integer-valued, |r| ≤ ln2/2): ln2
// split in two so r is exact, e^r by Cephes' polynomial, 2^fn built
// in the exponent bits (fn in [-126, 127]).
inline float exp_split(float x, float fn) {
  float r = x - fn * 0.693359375f;  // ln2 = C1 + C2, C1 exact in few bits
  r = r + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(fn) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return er * two_n;
}
}  // namespace fast_exp_detail

// exp(x) in f32 by Cephes expf's method (S. Moshier, Cephes Math Library):
// x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite two-constant ln2), a degree-6
// polynomial for e^r, and 2^n put in the exponent bits. Relative error
// ≤ ~2e-7 against std::exp over [-87, 88] (tests/fast_exp_test.cpp); inputs
// are clamped to that range, so e^-inf gives ~1e-38 rather than 0 (harmless
// for a softmax, whose largest term is 1).
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float t = x * 1.44269504088896341f;                 // x / ln2
  const int32_t n = int32_t(t + (t < 0 ? -0.5f : 0.5f));  // round to nearest
  return fast_exp_detail::exp_split(x, float(n));
}

// tanh(u) = 1 − 2 / (e^{2u} + 1), e^{2u} by exp_approx's method written
// without branches (u clamped to ±9, where tanh is ±1 in f32; rounding by
// the 1.5·2^23 trick), so a loop over it vectorizes: GELU's backward (train/
// ops_basic.cpp). Absolute error ≤ ~3e-7 against std::tanh (tests/fast_exp_test.cpp).
inline float tanh_approx(float u) {
  u = u < -9.0f ? -9.0f : u;
  u = u > 9.0f ? 9.0f : u;
  const float x = 2.0f * u, t = x * 1.44269504088896341f;
  const float fn = (t + 12582912.0f) - 12582912.0f;  // nearest integer (|t| < 2^22)
  return 1.0f - 2.0f / (fast_exp_detail::exp_split(x, fn) + 1.0f);
}

// In place x[i] = exp(x[i] − max) / Σ, as kernels::softmax but with
// exp_approx; AVX-512 (16 lanes) when the CPU has it, else the scalar loop.
void softmax_fast(float* x, int64_t n);
// log Σ_i exp(x[i]) (numerically stable), the same way; the sum is f32
// (per-lane partial sums on AVX-512), then log in double.
double log_sum_exp_fast(const float* x, int64_t n);
// gate[i] = gate[i] / (1 + exp(−gate[i])) · up[i] (SwiGLU), exp by exp_approx.
void silu_mul_fast(float* gate, const float* up, int64_t n);
// The scalar references of the three (used when the CPU lacks AVX-512; tests).
void softmax_fast_scalar(float* x, int64_t n);
double log_sum_exp_fast_scalar(const float* x, int64_t n);
void silu_mul_fast_scalar(float* gate, const float* up, int64_t n);

}  // namespace shrink::kernels
