// AVX2 kernels of the W8A8 products (only called when the CPU reports AVX2
// and FMA; see int8_gemm.cpp). Without VNNI, the weights are sign-extended to
// int16 and multiplied with the activation (widened once per call) by
// vpmaddwd: each pair sum is at most 2 * 128 * 128, exact in int32 for every
// int8 code (no vpmaddubsw, whose int16 pair sums saturate at +-127 extremes).
//
// Like gemv_avx2.cpp, R rows from R distant parts of W are computed together
// (R DRAM streams), each activation chunk loaded once for all R rows.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/int8_gemm.h"
#include "kernels/row_slabs.h"

#define SHRINK_AVX2 __attribute__((target("avx2,fma")))
#define SHRINK_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace shrink::kernels {

namespace {

// Rows per group and the slab size above which 6 streams are used (as
// gemv_avx2.cpp; 6 rows x 2 accumulators + 2 x + 2 w vectors = 16 ymm).
constexpr int kRowsCached = 4;
constexpr int kRowsStreamed = 6;
constexpr int64_t kStreamedMinBytes = int64_t{1} << 20;
constexpr int kPrefetchBytes = 1024;

SHRINK_AVX2_INLINE __m256i widen16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
SHRINK_AVX2_INLINE __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

SHRINK_AVX2_INLINE int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// acc[i * astride] = dot(row i, x) for i < R; row i starts at W + i * stride;
// x16 is x widened to int16.
template <int R>
SHRINK_AVX2 void dot_group(const int8_t* W, int64_t stride, const int8_t* x, const int16_t* x16, int32_t* acc,
                           int64_t astride, int64_t cols) {
  __m256i a0[R], a1[R];
  for (int i = 0; i < R; ++i) a0[i] = a1[i] = _mm256_setzero_si256();
  int64_t c = 0;
  for (; c + 32 <= cols; c += 32) {
    const __m256i x0 = load256(x16 + c), x1 = load256(x16 + c + 16);
    for (int i = 0; i < R; ++i) {
      const int8_t* p = W + i * stride + c;
      _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
      a0[i] = _mm256_add_epi32(a0[i], _mm256_madd_epi16(widen16(p), x0));
      a1[i] = _mm256_add_epi32(a1[i], _mm256_madd_epi16(widen16(p + 16), x1));
    }
  }
  if (c + 16 <= cols) {
    const __m256i x0 = load256(x16 + c);
    for (int i = 0; i < R; ++i) a0[i] = _mm256_add_epi32(a0[i], _mm256_madd_epi16(widen16(W + i * stride + c), x0));
    c += 16;
  }
  for (int i = 0; i < R; ++i) {
    const int8_t* row = W + i * stride;
    int32_t tail = 0;
    for (int64_t k = c; k < cols; ++k) tail += int32_t{row[k]} * int32_t{x[k]};
    acc[i * astride] = hsum_epi32(_mm256_add_epi32(a0[i], a1[i])) + tail;
  }
}

template <int R>
SHRINK_AVX2 void rows_in_runs(const int8_t* W, const int8_t* x, const int16_t* x16, int32_t* acc, int64_t rows,
                              int64_t cols) {
  int64_t run = rows / R;
  // Runs a multiple of 4 KiB long keep all R streams in the same L1 sets; one
  // row less spreads them (unless the rows themselves are 4 KiB multiples).
  if (run > 1 && (run * cols) % 4096 == 0 && cols % 4096 != 0) --run;
  for (int64_t i = 0; i < run; ++i) dot_group<R>(W + i * cols, run * cols, x, x16, acc + i, run, cols);
  for (int64_t r = run * R; r < rows; ++r) dot_group<1>(W + r * cols, 0, x, x16, acc + r, 0, cols);
}

// 8 codes: min(x * id, 127) then max(., -127) in this operand order (NaN ->
// 127), then vcvtps2dq, which rounds half to even (default MXCSR) as
// std::nearbyint does.
SHRINK_AVX2_INLINE __m256i codes8(const float* p, __m256 vid, __m256 hi, __m256 lo) {
  return _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(p), vid), hi), lo));
}

// _mm256_min_ps(a, b) / _mm256_max_ps(a, b) for one float (second operand on NaN).
inline float simd_min(float a, float b) { return a < b ? a : b; }
inline float simd_max(float a, float b) { return a > b ? a : b; }

}  // namespace

SHRINK_AVX2 void int8_impl::dot_rows_avx2(const int8_t* W, const int32_t*, const int8_t* x, int32_t* acc, int64_t rows,
                              int64_t cols) {
  thread_local std::vector<int16_t> x16_buf;
  if (static_cast<int64_t>(x16_buf.size()) < cols) x16_buf.resize(static_cast<size_t>(cols));
  int16_t* x16 = x16_buf.data();
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(x16 + c), widen16(x + c));
  for (; c < cols; ++c) x16[c] = x[c];
  if (streamed_walk(rows * cols, kStreamedMinBytes))
    rows_in_runs<kRowsStreamed>(W, x, x16, acc, rows, cols);
  else
    rows_in_runs<kRowsCached>(W, x, x16, acc, rows, cols);
}

SHRINK_AVX2 void int8_impl::scale_avx2(const int32_t* acc, int64_t ldacc, const float* x_scales, const float* w_scale,
                                       const float* bias, float* y, int64_t ldy, int64_t n, int64_t cols) {
  for (int64_t i = 0; i < n; ++i) {
    const float xsf = x_scales[i];
    const __m256 xs = _mm256_set1_ps(xsf);
    const int32_t* a = acc + i * ldacc;
    float* yi = y + i * ldy;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      const __m256 s = _mm256_mul_ps(xs, _mm256_loadu_ps(w_scale + j));
      const __m256 b = bias ? _mm256_loadu_ps(bias + j) : _mm256_setzero_ps();
      _mm256_storeu_ps(yi + j, _mm256_fmadd_ps(_mm256_cvtepi32_ps(load256(a + j)), s, b));
    }
    for (; j < cols; ++j) {
      int32_t v;  // acc may share memory with y: read it as bytes
      std::memcpy(&v, a + j, sizeof v);
      yi[j] = std::fma(static_cast<float>(v), xsf * w_scale[j], bias ? bias[j] : 0.0f);
    }
  }
}

SHRINK_AVX2 void int8_impl::quantize_avx2(const float* x, int64_t n, int64_t k, float static_scale, int8_t* q,
                                          float* scales) {
  const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    int8_t* qi = q + i * k;
    float id;
    if (static_scale != 0.0f) {
      id = 1.0f / static_scale;
      if (scales) scales[i] = static_scale;
    } else {
      // max(|x|, amax) in this operand order ignores NaN (returns amax).
      __m256 am = _mm256_setzero_ps();
      int64_t c = 0;
      for (; c + 8 <= k; c += 8) am = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xi + c), abs_mask), am);
      __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
      float amax = _mm_cvtss_f32(m4);
      for (; c < k; ++c) amax = simd_max(std::fabs(xi[c]), amax);
      if (amax < 1e-30f) {  // int8_gemm.cpp kMinAmax
        std::memset(qi, 0, static_cast<size_t>(k));
        scales[i] = 0.0f;
        continue;
      }
      id = 127.0f / amax;
      scales[i] = amax / 127.0f;
    }
    const __m256 vid = _mm256_set1_ps(id);
    int64_t c = 0;
    for (; c + 32 <= k; c += 32) {
      const __m256i p01 = _mm256_packs_epi32(codes8(xi + c, vid, hi, lo), codes8(xi + c + 8, vid, hi, lo));
      const __m256i p23 = _mm256_packs_epi32(codes8(xi + c + 16, vid, hi, lo), codes8(xi + c + 24, vid, hi, lo));
      const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qi + c), b);
    }
    for (; c < k; ++c) {
      const float v = simd_max(simd_min(xi[c] * id, 127.0f), -127.0f);
      qi[c] = static_cast<int8_t>(static_cast<int>(std::nearbyint(v)));
    }
  }
}

}  // namespace shrink::kernels
