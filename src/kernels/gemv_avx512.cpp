// AVX-512 row kernels for gemv (compiled with a target attribute; only called
// when the CPU reports AVX-512F/BW/VL). Weights are widened to f32 and
// accumulated in f32 against f32 activations.
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever an intrinsic using one is inlined
// (GCC PR 105593, fixed in later releases).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "core/error.h"
#include "kernels/gemv.h"
#include "kernels/gemv_simd.h"
#include "kernels/row_slabs.h"

// Every helper carries the same target so it can be inlined into the kernels;
// no avx512bf16 instructions are used, so the dispatch gate does not need it.
#define SHRINK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c"), always_inline)) inline

namespace shrink::kernels {

namespace {

// Rows processed together: each x vector is loaded once per group, the rows
// come from R distant parts of W, i.e. R independent DRAM streams (see
// rows_in_runs), and 2 accumulators per row (16 zmm for 8 rows) hide the FMA
// latency without spilling. Measured A/B, interleaved over 1 GiB of distinct
// matrices: 8 rows stream 5-10% faster from DRAM than 4 (16 was slower), but
// 4 rows are up to 2x faster on small matrices that sit in L2 (less
// per-group overhead on short rows). So: 8 rows for slabs too big for L2.
// Each row's sum is computed in the same order whichever group size handles
// it, so results do not depend on the thread count (which sizes the slabs).
constexpr int kRowsCached = 4;
constexpr int kRowsStreamed = 8;
constexpr int64_t kStreamedMinBytes = int64_t{2} << 20;  // this CPU's L2 per core

// How far ahead each row stream is prefetched (+5-15% over the hardware
// prefetcher alone when streaming from DRAM; 512 and 2048 measured the same).
constexpr int kPrefetchBytes = 1024;

// 16 weights of type T starting at p, as f32.
template <DType T>
SHRINK_AVX512_INLINE __m512 load16(const void* p) {
  if constexpr (T == DType::F32) {
    return _mm512_loadu_ps(p);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
  } else {
    // bf16 is the top half of an f32: widening is a 16-bit left shift.
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
}

// The first popcount(m) (< 16) weights at p, zero elsewhere; never touches memory past them.
template <DType T>
SHRINK_AVX512_INLINE __m512 load16_masked(const void* p, __mmask16 m) {
  if constexpr (T == DType::F32) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
}

template <DType T>
constexpr int64_t kElemBytes = T == DType::F32 ? 4 : 2;

// y[i * ystride] = dot(W row i, x) for i < R, where row i starts at
// W + i * stride bytes.
template <DType T, int R>
SHRINK_AVX512 void dot_rows(const char* W, int64_t stride, const float* x, float* y, int64_t ystride, int64_t cols) {
  constexpr int64_t esz = kElemBytes<T>;
  __m512 acc0[R], acc1[R];
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();

  int64_t c = 0;
  if constexpr (T == DType::BF16) {
    // 32 bf16 per 512-bit load: the even elements widen with a shift, the odd
    // ones with a mask (each sits in the top half of its 32-bit lane already).
    // x is de-interleaved to match once per 32 columns and reused for R rows,
    // which saves the per-row 16->32 bit shuffles of the generic path.
    const __m512i even_idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd_idx = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    for (; c + 32 <= cols; c += 32) {
      const __m512 xa = _mm512_loadu_ps(x + c), xb = _mm512_loadu_ps(x + c + 16);
      const __m512 xe = _mm512_permutex2var_ps(xa, even_idx, xb);
      const __m512 xo = _mm512_permutex2var_ps(xa, odd_idx, xb);
      for (int i = 0; i < R; ++i) {
        const char* p = W + i * stride + c * esz;
        _mm_prefetch(p + kPrefetchBytes, _MM_HINT_T0);
        const __m512i w = _mm512_loadu_si512(p);
        acc0[i] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(w, 16)), xe, acc0[i]);
        acc1[i] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(w, hi_mask)), xo, acc1[i]);
      }
    }
  } else {
    // 32 columns per step, two accumulators per row.
    for (; c + 32 <= cols; c += 32) {
      const __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);
      for (int i = 0; i < R; ++i) {
        const char* p = W + i * stride + c * esz;
        _mm_prefetch(p + kPrefetchBytes, _MM_HINT_T0);
        // 32 f32 span two cache lines; 32 f16 fit in one.
        if constexpr (esz == 4) _mm_prefetch(p + kPrefetchBytes + 64, _MM_HINT_T0);
        acc0[i] = _mm512_fmadd_ps(load16<T>(p), x0, acc0[i]);
        acc1[i] = _mm512_fmadd_ps(load16<T>(p + 16 * esz), x1, acc1[i]);
      }
    }
  }
  if (c + 16 <= cols) {
    const __m512 x0 = _mm512_loadu_ps(x + c);
    for (int i = 0; i < R; ++i) acc0[i] = _mm512_fmadd_ps(load16<T>(W + i * stride + c * esz), x0, acc0[i]);
    c += 16;
  }
  if (c < cols) {
    const __mmask16 m = static_cast<__mmask16>((1u << (cols - c)) - 1);
    const __m512 x0 = _mm512_maskz_loadu_ps(m, x + c);
    for (int i = 0; i < R; ++i)
      acc1[i] = _mm512_fmadd_ps(load16_masked<T>(W + i * stride + c * esz, m), x0, acc1[i]);
  }
  for (int i = 0; i < R; ++i) y[i * ystride] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[i], acc1[i]));
}

// The R rows computed together come from R far-apart parts of W (R
// contiguous runs of rows, walked in step), not from R adjacent rows: each
// run is one sequential stream, and several distant streams keep more DRAM
// reads in flight than one (a read probe on one core here: ~16 GB/s with 4+
// streams vs ~11 GB/s with one). Row i + 1 of a run follows row i in memory,
// so each stream's prefetch simply runs on into the row it will read next.
template <DType T, int R>
SHRINK_AVX512 void rows_in_runs(const char* w, const float* x, float* y, int64_t rows, int64_t cols) {
  const int64_t row_bytes = cols * kElemBytes<T>;
  int64_t run = rows / R;
  // Runs a multiple of 4 KiB long keep all R streams at the same offset within
  // a page, i.e. in the same L1 sets; one row less spreads them (unless the
  // rows themselves are 4 KiB multiples). Measured +3-5% from DRAM.
  if (run > 1 && (run * row_bytes) % 4096 == 0 && row_bytes % 4096 != 0) --run;
  for (int64_t i = 0; i < run; ++i) dot_rows<T, R>(w + i * row_bytes, run * row_bytes, x, y + i, run, cols);
  for (int64_t r = run * R; r < rows; ++r) dot_rows<T, 1>(w + r * row_bytes, 0, x, y + r, 0, cols);
}

template <DType T>
SHRINK_AVX512 void rows_typed(const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  const char* w = static_cast<const char*>(W);
  if (streamed_walk(rows * cols * kElemBytes<T>, kStreamedMinBytes))
    rows_in_runs<T, kRowsStreamed>(w, x, y, rows, cols);
  else
    rows_in_runs<T, kRowsCached>(w, x, y, rows, cols);
}

// dst[i] = src[i] as f32 for i < n (matmul widens 16-bit weight panels with it).
template <DType T>
SHRINK_AVX512 void widen_typed(const void* src, float* dst, int64_t n) {
  const char* s = static_cast<const char*>(src);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16<T>(s + i * kElemBytes<T>));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, m, load16_masked<T>(s + i * kElemBytes<T>, m));
  }
}

}  // namespace

void widen_avx512(DType wtype, const void* src, float* dst, int64_t n) {
  switch (wtype) {
    case DType::F32: return widen_typed<DType::F32>(src, dst, n);
    case DType::F16: return widen_typed<DType::F16>(src, dst, n);
    case DType::BF16: return widen_typed<DType::BF16>(src, dst, n);
    default: fail("widen_avx512: unsupported type ", dtype_name(wtype));
  }
}

void gemv_rows_avx512(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  switch (wtype) {
    case DType::F32: return rows_typed<DType::F32>(W, x, y, rows, cols);
    case DType::F16: return rows_typed<DType::F16>(W, x, y, rows, cols);
    case DType::BF16: return rows_typed<DType::BF16>(W, x, y, rows, cols);
    default: fail("gemv_rows_avx512: unsupported weight type ", dtype_name(wtype));
  }
}

}  // namespace shrink::kernels
