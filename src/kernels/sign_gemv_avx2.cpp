// AVX2 kernels of the sign-matrix products (kernels/sign_gemv.h; only called
// when the CPU reports AVX2). Without mask registers, each 8 bits become a
// lane mask by one variable shift of the broadcast 32-bit word (bit l of the
// chunk moved to the sign bit of lane l), which vblendvps reads directly:
// acc += blend(0, x, mask) adds the x of set bits. Binary rows then use
// 2 sum_{bit=1} x - sum_c x as the AVX-512 path does; ternary rows collect the
// "+1" and "-1" planes separately. R rows share each load of x, two
// accumulators per row.
#include <immintrin.h>

#include <algorithm>

#include "kernels/sign_gemv.h"

#define SHRINK_AVX2 __attribute__((target("avx2,fma")))
#define SHRINK_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace shrink::kernels {

namespace {

typedef uint32_t u32_alias __attribute__((may_alias));

constexpr int kRows = 4;

// The 32-bit half h (0, 1) of a 64-bit plane word.
SHRINK_AVX2_INLINE uint32_t half_at(const uint64_t* w, int h) { return reinterpret_cast<const u32_alias*>(w)[h]; }

// Lane mask (sign bits) of chunk q (0..3) of 8 columns inside a 32-bit word.
SHRINK_AVX2_INLINE __m256 lane_mask(uint32_t bits, int q) {
  const __m256i shift = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
  const __m256i s = _mm256_sub_epi32(shift, _mm256_set1_epi32(8 * q));
  return _mm256_castsi256_ps(_mm256_sllv_epi32(_mm256_set1_epi32(static_cast<int>(bits)), s));
}

// Lanes [0, n) of an 8-lane chunk, as maskload/maskstore masks.
SHRINK_AVX2_INLINE __m256i first_lanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

SHRINK_AVX2_INLINE float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// x[c0 .. c0+8) with lanes past cols zero (never reads past x[cols - 1]).
SHRINK_AVX2_INLINE __m256 load_x(const float* x, int64_t c0, int64_t cols) {
  if (c0 + 8 <= cols) return _mm256_loadu_ps(x + c0);
  return _mm256_maskload_ps(x + c0, first_lanes(cols - c0));
}

SHRINK_AVX2 float sum_x(const float* x, int64_t cols) {
  __m256 s = _mm256_setzero_ps();
  for (int64_t c = 0; c < cols; c += 8) s = _mm256_add_ps(s, load_x(x, c, cols));
  return hsum(s);
}

// Adds chunk j (0..7: bits 8(j%4).. of 32-bit half j/4) of word k of R rows
// (row stride rw words) times xv into acc (binary: into acc[i][A]).
template <int R, bool kTernary, int A>
SHRINK_AVX2_INLINE void add_chunk(__m256 (&acc)[R][2], const uint64_t* S, int64_t rw, int64_t k, int j, __m256 xv) {
  const __m256 zero = _mm256_setzero_ps();
  const int h = j / 4, q = j % 4;
  for (int i = 0; i < R; ++i) {
    const uint64_t* w = S + i * rw + (kTernary ? 2 : 1) * k;
    if constexpr (kTernary) {
      acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_blendv_ps(zero, xv, lane_mask(half_at(w, h), q)));
      acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_blendv_ps(zero, xv, lane_mask(half_at(w + 1, h), q)));
    } else {
      acc[i][A] = _mm256_add_ps(acc[i][A], _mm256_blendv_ps(zero, xv, lane_mask(half_at(w, h), q)));
    }
  }
}

// y[i] for the R rows starting at S (row stride rw words). Every accumulator
// index is a compile-time constant (chunks in pairs, unrolled), or GCC keeps
// them in memory. In the last, partial word, lanes past cols read x as 0, so
// their bits do not matter.
template <int R, bool kTernary>
SHRINK_AVX2 void rows_block(const uint64_t* S, int64_t rw, const float* x, float* y, int64_t cols, float xsum) {
  __m256 acc[R][2];
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const int64_t full = cols / 64;
  for (int64_t k = 0; k < full; ++k) {
    const float* xk = x + 64 * k;
#pragma GCC unroll 4
    for (int j = 0; j < 8; j += 2) {
      add_chunk<R, kTernary, 0>(acc, S, rw, k, j, _mm256_loadu_ps(xk + 8 * j));
      add_chunk<R, kTernary, 1>(acc, S, rw, k, j + 1, _mm256_loadu_ps(xk + 8 * j + 8));
    }
  }
  for (int j = 0; 64 * full + 8 * j < cols; ++j)
    add_chunk<R, kTernary, 0>(acc, S, rw, full, j, load_x(x, 64 * full + 8 * j, cols));
  for (int i = 0; i < R; ++i) {
    if constexpr (kTernary)
      y[i] = hsum(_mm256_sub_ps(acc[i][0], acc[i][1]));
    else
      y[i] = 2.0f * hsum(_mm256_add_ps(acc[i][0], acc[i][1])) - xsum;
  }
}

template <bool kTernary>
SHRINK_AVX2 void rows_all(const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols) {
  const int64_t rw = sign_row_words(kTernary ? SignCode::Ternary : SignCode::Binary, cols);
  const float xsum = kTernary ? 0.0f : sum_x(x, cols);
  int64_t r = 0;
  for (; r + kRows <= rows; r += kRows) rows_block<kRows, kTernary>(S + r * rw, rw, x, y + r, cols, xsum);
  for (; r < rows; ++r) rows_block<1, kTernary>(S + r * rw, rw, x, y + r, cols, xsum);
}

template <bool kTernary>
SHRINK_AVX2 void unpack_row(const uint64_t* w, float* out, int64_t cols) {
  const __m256 one = _mm256_set1_ps(1.0f), minus = _mm256_set1_ps(-1.0f), zero = _mm256_setzero_ps();
  for (int64_t c0 = 0; c0 < cols; c0 += 8) {
    const uint64_t* word = w + (kTernary ? 2 : 1) * (c0 / 64);
    const int j = static_cast<int>((c0 % 64) / 8), h = j / 4, q = j % 4;
    __m256 v;
    if constexpr (kTernary)
      v = _mm256_blendv_ps(_mm256_blendv_ps(zero, one, lane_mask(half_at(word, h), q)), minus,
                           lane_mask(half_at(word + 1, h), q));
    else
      v = _mm256_blendv_ps(minus, one, lane_mask(half_at(word, h), q));
    if (c0 + 8 <= cols)
      _mm256_storeu_ps(out + c0, v);
    else
      _mm256_maskstore_ps(out + c0, first_lanes(cols - c0), v);
  }
}

}  // namespace

SHRINK_AVX2 void sign_rows_avx2(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows,
                                int64_t cols) {
  if (code == SignCode::Ternary)
    rows_all<true>(S, x, y, rows, cols);
  else
    rows_all<false>(S, x, y, rows, cols);
}

SHRINK_AVX2 void sign_unpack_avx2(SignCode code, const uint64_t* S, float* out, int64_t rows, int64_t cols) {
  const int64_t rw = sign_row_words(code, cols);
  for (int64_t r = 0; r < rows; ++r) {
    if (code == SignCode::Ternary)
      unpack_row<true>(S + r * rw, out + r * cols, cols);
    else
      unpack_row<false>(S + r * rw, out + r * cols, cols);
  }
}

}  // namespace shrink::kernels
