// AVX-512 softmax / log-sum-exp / silu·up with exp_approx's method (fast_exp.h), 16
// lanes at a time with masked tails. Compiled with a target attribute and
// only called when the CPU has AVX-512F (fast_exp.cpp dispatches); the scalar
// exp_approx loops in fast_exp.cpp are the reference (tests/fast_exp_test.cpp).
// GCC 12's immintrin.h leaves undefined vectors that -Wmaybe-uninitialized
// flags wherever such an intrinsic is inlined (GCC PR 105593), as in gemv_avx512.cpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <cstdint>

namespace shrink::kernels {

#define SHRINK_AVX512 __attribute__((target("avx512f,fma")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,fma"), always_inline)) inline

namespace {

SHRINK_AVX512_INLINE __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 er = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(er, _mm512_castsi512_ps(bits));
}

SHRINK_AVX512_INLINE __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

SHRINK_AVX512 float max16(const float* x, int64_t n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16)
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail_mask(n - i), x + i));
  return _mm512_reduce_max_ps(mx);
}

}  // namespace

// out[i] = exp(x[i] − max) (out may be x, or null), returns Σ (lane sums in f32, added at the end).
SHRINK_AVX512 float exp_shifted_avx512(const float* x, float* out, int64_t n, float* max_out) {
  const float mx = max16(x, n);
  *max_out = mx;
  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmx));
    sum = _mm512_mask_add_ps(sum, m, sum, e);
    if (out) _mm512_mask_storeu_ps(out + i, m, e);
  }
  return _mm512_reduce_add_ps(sum);
}

SHRINK_AVX512 void scale_avx512(float* x, int64_t n, float k) {
  const __m512 vk = _mm512_set1_ps(k);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vk));
  }
}

// The same operations in the same order as silu_mul_fast_scalar: x / (1 + e) · u.
SHRINK_AVX512 void silu_mul_avx512(float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    const __m512 s = _mm512_div_ps(x, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace shrink::kernels
