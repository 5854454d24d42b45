// AVX2 row kernels for gemv (compiled with a target attribute; only called
// when the CPU reports AVX2, FMA and F16C). Weights are widened to f32 and
// accumulated in f32 against f32 activations.
#include <immintrin.h>

#include "core/error.h"
#include "kernels/gemv.h"
#include "kernels/gemv_simd.h"
#include "kernels/row_slabs.h"

// Every helper carries the same target so it can be inlined into the kernels.
#define SHRINK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define SHRINK_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace shrink::kernels {

namespace {

// Rows processed together: x is loaded once per group, and the rows come from
// R distant parts of W, i.e. R independent DRAM streams (see rows_in_runs).
// Measured A/B over 1 GiB of distinct matrices: 6 rows stream 6-10% faster
// from DRAM than 4 (8 no better); small matrices in L2 favour 4 (as on
// AVX-512). Two accumulators per row either way (12 + 2 x vectors + a
// temporary: exactly the 16 ymm registers for 6 rows, checked spill-free):
// each row's sum is then computed in the same order whichever group size
// handles it, so results do not depend on the thread count.
constexpr int kRowsCached = 4;
constexpr int kRowsStreamed = 6;
constexpr int64_t kStreamedMinBytes = int64_t{1} << 20;  // a typical AVX2 CPU's L2 or less

// How far ahead each row stream is prefetched (+5-15% over the hardware
// prefetcher alone when streaming from DRAM).
constexpr int kPrefetchBytes = 1024;

template <DType T>
constexpr int64_t kElemBytes = T == DType::F32 ? 4 : 2;

// 8 weights of type T starting at p, as f32.
template <DType T>
SHRINK_AVX2_INLINE __m256 load8(const char* p) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (T == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    // bf16 is the top half of an f32: widening is a 16-bit left shift.
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
}

// One weight as f32 (for the column tail).
template <DType T>
SHRINK_AVX2_INLINE float load1(const char* p, int64_t i) {
  if constexpr (T == DType::F32) {
    return reinterpret_cast<const float*>(p)[i];
  } else if constexpr (T == DType::F16) {
    return _cvtsh_ss(reinterpret_cast<const uint16_t*>(p)[i]);
  } else {
    return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
  }
}

SHRINK_AVX2_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// y[i * ystride] = dot(W row i, x) for i < R, where row i starts at
// W + i * stride bytes.
template <DType T, int R>
SHRINK_AVX2 void dot_rows(const char* W, int64_t stride, const float* x, float* y, int64_t ystride, int64_t cols) {
  constexpr int64_t esz = kElemBytes<T>;
  __m256 acc0[R], acc1[R];
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();

  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
    for (int i = 0; i < R; ++i) {
      const char* p = W + i * stride + c * esz;
      // One prefetch per cache line: 16 f32 = 64 bytes; 16 halves = 32 bytes,
      // so every other step would do, but a redundant prefetch is cheap.
      _mm_prefetch(p + kPrefetchBytes, _MM_HINT_T0);
      acc0[i] = _mm256_fmadd_ps(load8<T>(p), x0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(load8<T>(p + 8 * esz), x1, acc1[i]);
    }
  }
  if (c + 8 <= cols) {
    const __m256 x0 = _mm256_loadu_ps(x + c);
    for (int i = 0; i < R; ++i) acc0[i] = _mm256_fmadd_ps(load8<T>(W + i * stride + c * esz), x0, acc0[i]);
    c += 8;
  }
  for (int i = 0; i < R; ++i) {
    const char* row = W + i * stride;
    float tail = 0.0f;
    for (int64_t k = c; k < cols; ++k) tail += load1<T>(row, k) * x[k];
    y[i * ystride] = hsum(_mm256_add_ps(acc0[i], acc1[i])) + tail;
  }
}

// The R rows computed together come from R far-apart parts of W (R
// contiguous runs of rows, walked in step), not from R adjacent rows: each
// run is one sequential stream, and several distant streams keep more DRAM
// reads in flight than one. Row i + 1 of a run follows row i in memory, so
// each stream's prefetch simply runs on into the row it will read next.
template <DType T, int R>
SHRINK_AVX2 void rows_in_runs(const char* w, const float* x, float* y, int64_t rows, int64_t cols) {
  const int64_t row_bytes = cols * kElemBytes<T>;
  int64_t run = rows / R;
  // Runs a multiple of 4 KiB long keep all R streams in the same L1 sets; one
  // row less spreads them (unless the rows themselves are 4 KiB multiples).
  if (run > 1 && (run * row_bytes) % 4096 == 0 && row_bytes % 4096 != 0) --run;
  for (int64_t i = 0; i < run; ++i) dot_rows<T, R>(w + i * row_bytes, run * row_bytes, x, y + i, run, cols);
  for (int64_t r = run * R; r < rows; ++r) dot_rows<T, 1>(w + r * row_bytes, 0, x, y + r, 0, cols);
}

template <DType T>
SHRINK_AVX2 void rows_typed(const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  const char* w = static_cast<const char*>(W);
  if (streamed_walk(rows * cols * kElemBytes<T>, kStreamedMinBytes))
    rows_in_runs<T, kRowsStreamed>(w, x, y, rows, cols);
  else
    rows_in_runs<T, kRowsCached>(w, x, y, rows, cols);
}

// dst[i] = src[i] as f32 for i < n (matmul widens 16-bit weight panels with it).
template <DType T>
SHRINK_AVX2 void widen_typed(const void* src, float* dst, int64_t n) {
  const char* s = static_cast<const char*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8<T>(s + i * kElemBytes<T>));
  for (; i < n; ++i) dst[i] = load1<T>(s, i);
}

}  // namespace

void gemv_rows_avx2(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  switch (wtype) {
    case DType::F32: return rows_typed<DType::F32>(W, x, y, rows, cols);
    case DType::F16: return rows_typed<DType::F16>(W, x, y, rows, cols);
    case DType::BF16: return rows_typed<DType::BF16>(W, x, y, rows, cols);
    default: fail("gemv_rows_avx2: unsupported weight type ", dtype_name(wtype));
  }
}

void widen_avx2(DType wtype, const void* src, float* dst, int64_t n) {
  switch (wtype) {
    case DType::F32: return widen_typed<DType::F32>(src, dst, n);
    case DType::F16: return widen_typed<DType::F16>(src, dst, n);
    case DType::BF16: return widen_typed<DType::BF16>(src, dst, n);
    default: fail("widen_avx2: unsupported type ", dtype_name(wtype));
  }
}

}  // namespace shrink::kernels
