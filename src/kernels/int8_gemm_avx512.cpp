// AVX-512 VNNI kernels of the W8A8 products (only called when the CPU reports
// AVX-512F/BW/VL + AVX512_VNNI + FMA; see int8_gemm.cpp). vpdpbusd multiplies
// unsigned by signed bytes, so the activation is offset to x + 128 (a u8, any
// int8 x works) and 128 * row_sum is subtracted from each row's sum: exact,
// with wrap-around int32 arithmetic in between.
//
// Like gemv_avx512.cpp, R rows from R distant parts of W are computed together
// (R independent DRAM streams, each prefetched ahead) and each activation
// chunk is loaded once for all R rows. Integer sums do not depend on R, so
// results do not depend on the thread count.
//
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever an intrinsic using one is inlined (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/int8_gemm.h"
#include "kernels/row_slabs.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma"), always_inline)) inline

namespace shrink::kernels {

namespace {

// Rows per group, and the slab size above which the 8-stream form is used
// (as gemv_avx512.cpp: 8 streams help from DRAM, 4 are cheaper in L2).
constexpr int kRowsCached = 4;
constexpr int kRowsStreamed = 8;
constexpr int64_t kStreamedMinBytes = int64_t{2} << 20;
constexpr int kPrefetchBytes = 1024;

// The first n (< 64) bytes.
SHRINK_AVX512_INLINE __mmask64 tail_mask64(int64_t n) { return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1; }
SHRINK_AVX512_INLINE __mmask16 tail_mask16(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }

// acc[i * astride] = dot(row i, x) for i < R; row i starts at W + i * stride,
// xu = x + 128 as bytes, rs[i * astride] its row sum.
template <int R>
SHRINK_AVX512 void dot_group(const int8_t* W, int64_t stride, const uint8_t* xu, const int32_t* rs, int32_t* acc,
                             int64_t astride, int64_t cols) {
  __m512i a0[R], a1[R];
  for (int i = 0; i < R; ++i) a0[i] = a1[i] = _mm512_setzero_si512();
  int64_t c = 0;
  for (; c + 128 <= cols; c += 128) {
    const __m512i x0 = _mm512_loadu_si512(xu + c), x1 = _mm512_loadu_si512(xu + c + 64);
    for (int i = 0; i < R; ++i) {
      const int8_t* p = W + i * stride + c;
      _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes + 64, _MM_HINT_T0);
      a0[i] = _mm512_dpbusd_epi32(a0[i], x0, _mm512_loadu_si512(p));
      a1[i] = _mm512_dpbusd_epi32(a1[i], x1, _mm512_loadu_si512(p + 64));
    }
  }
  for (; c < cols; c += 64) {
    // Masked loads never touch bytes past the row; masked-off bytes are 0 in
    // both operands and add nothing.
    const __mmask64 m = tail_mask64(cols - c);
    const __m512i x0 = _mm512_maskz_loadu_epi8(m, xu + c);
    for (int i = 0; i < R; ++i) a0[i] = _mm512_dpbusd_epi32(a0[i], x0, _mm512_maskz_loadu_epi8(m, W + i * stride + c));
  }
  for (int i = 0; i < R; ++i) {
    const uint32_t s = static_cast<uint32_t>(_mm512_reduce_add_epi32(_mm512_add_epi32(a0[i], a1[i])));
    acc[i * astride] = static_cast<int32_t>(s - 128u * static_cast<uint32_t>(rs[i * astride]));
  }
}

// R runs of contiguous rows walked in step (see gemv_avx512.cpp rows_in_runs),
// then the leftover rows one at a time.
template <int R>
SHRINK_AVX512 void rows_in_runs(const int8_t* W, const int32_t* rs, const uint8_t* xu, int32_t* acc, int64_t rows,
                                int64_t cols) {
  int64_t run = rows / R;
  // Runs a multiple of 4 KiB long keep all R streams in the same L1 sets; one
  // row less spreads them (unless the rows themselves are 4 KiB multiples).
  if (run > 1 && (run * cols) % 4096 == 0 && cols % 4096 != 0) --run;
  for (int64_t i = 0; i < run; ++i) dot_group<R>(W + i * cols, run * cols, xu, rs + i, acc + i, run, cols);
  for (int64_t r = run * R; r < rows; ++r) dot_group<1>(W + r * cols, 0, xu, rs + r, acc + r, 0, cols);
}

}  // namespace

SHRINK_AVX512 void int8_impl::dot_rows_avx512(const int8_t* W, const int32_t* row_sum, const int8_t* x, int32_t* acc,
                                              int64_t rows, int64_t cols) {
  thread_local std::vector<uint8_t> xu_buf;
  if (static_cast<int64_t>(xu_buf.size()) < cols) xu_buf.resize(static_cast<size_t>(cols));
  uint8_t* xu = xu_buf.data();
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t c = 0; c < cols; c += 64) {
    const __mmask64 m = tail_mask64(cols - c);
    _mm512_mask_storeu_epi8(xu + c, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + c), bias));
  }
  if (streamed_walk(rows * cols, kStreamedMinBytes))
    rows_in_runs<kRowsStreamed>(W, row_sum, xu, acc, rows, cols);
  else
    rows_in_runs<kRowsCached>(W, row_sum, xu, acc, rows, cols);
}

SHRINK_AVX512 void int8_impl::scale_avx512(const int32_t* acc, int64_t ldacc, const float* x_scales,
                                           const float* w_scale, const float* bias, float* y, int64_t ldy, int64_t n,
                                           int64_t cols) {
  for (int64_t i = 0; i < n; ++i) {
    const __m512 xs = _mm512_set1_ps(x_scales[i]);
    const int32_t* a = acc + i * ldacc;
    float* yi = y + i * ldy;
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      const __m512 s = _mm512_mul_ps(xs, _mm512_loadu_ps(w_scale + j));
      const __m512 b = bias ? _mm512_loadu_ps(bias + j) : _mm512_setzero_ps();
      _mm512_storeu_ps(yi + j, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(a + j)), s, b));
    }
    if (j < cols) {
      const __mmask16 m = tail_mask16(cols - j);
      const __m512 s = _mm512_mul_ps(xs, _mm512_maskz_loadu_ps(m, w_scale + j));
      const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + j) : _mm512_setzero_ps();
      const __m512 v = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, a + j));
      _mm512_mask_storeu_ps(yi + j, m, _mm512_fmadd_ps(v, s, b));
    }
  }
}

SHRINK_AVX512 void int8_impl::quantize_avx512(const float* x, int64_t n, int64_t k, float static_scale, int8_t* q,
                                              float* scales) {
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    int8_t* qi = q + i * k;
    float id;
    if (static_scale != 0.0f) {
      id = 1.0f / static_scale;
      if (scales) scales[i] = static_scale;
    } else {
      // max(|x|, amax) in this operand order ignores NaN (returns amax).
      __m512 am = _mm512_setzero_ps();
      int64_t c = 0;
      for (; c + 16 <= k; c += 16) am = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xi + c)), am);
      if (c < k) am = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask16(k - c), xi + c)), am);
      const float amax = _mm512_reduce_max_ps(am);
      if (amax < 1e-30f) {  // int8_gemm.cpp kMinAmax
        std::memset(qi, 0, static_cast<size_t>(k));
        scales[i] = 0.0f;
        continue;
      }
      id = 127.0f / amax;
      scales[i] = amax / 127.0f;
    }
    const __m512 vid = _mm512_set1_ps(id);
    for (int64_t c = 0; c < k; c += 16) {
      const __mmask16 m = k - c >= 16 ? __mmask16(0xFFFF) : tail_mask16(k - c);
      // min(v, 127) then max(., -127) in this operand order: NaN -> 127.
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xi + c), vid);
      v = _mm512_max_ps(_mm512_min_ps(v, hi), lo);
      const __m512i iv = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm512_mask_cvtsepi32_storeu_epi8(qi + c, m, iv);
    }
  }
}

}  // namespace shrink::kernels
