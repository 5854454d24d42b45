// AVX-512 kernels of the sign-matrix products (kernels/sign_gemv.h; only
// called when the CPU reports AVX-512F/BW/VL). The bit-planes are used as
// they are stored: every 16 bits of a row are the k-mask of one masked add of
// 16 x values (vaddps zmm{k}, loaded with kmovw straight from memory), so a
// binary row costs one add per 16 weights and needs no unpacking:
//   sum_c S[r,c] x[c] = sum_{bit=1} x - sum_{bit=0} x = 2 sum_{bit=1} x - sum_c x.
// Ternary rows add their "+1" and "-1" planes into separate accumulators.
// R rows share each load of x; two accumulators per row (binary) or one per
// plane (ternary) give 2R independent add chains, enough to hide the latency.
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever such an intrinsic is inlined (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>

#include "kernels/sign_gemv.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline

namespace shrink::kernels {

namespace {

// The planes are uint64 arrays; their 16-bit quarters are read through this
// type (GCC's may_alias) so the reads are well defined and compile to kmovw k, m16.
typedef uint16_t u16_alias __attribute__((may_alias));

constexpr int kRows = 4;

SHRINK_AVX512_INLINE __mmask16 mask_at(const uint64_t* w, int q) {
  return static_cast<__mmask16>(reinterpret_cast<const u16_alias*>(w)[q]);
}

// Valid lanes of the 16-value chunk starting at column c0 (< cols).
SHRINK_AVX512_INLINE __mmask16 valid_lanes(int64_t c0, int64_t cols) {
  const int64_t n = std::min<int64_t>(16, cols - c0);
  return static_cast<__mmask16>((1u << n) - 1);
}

// Sum of x[0..cols) in a fixed order (the same for every call, whatever the threads).
SHRINK_AVX512 float sum_x(const float* x, int64_t cols) {
  __m512 s = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(x + c));
  if (c < cols) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(valid_lanes(c, cols), x + c));
  return _mm512_reduce_add_ps(s);
}

// y[i] for the R rows starting at S (row stride rw words). Binary: acc[i][0|1]
// both collect the x of set bits (alternate chunks); ternary: acc[i][0] the
// "+1" plane, acc[i][1] the "-1" plane.
template <int R, bool kTernary>
SHRINK_AVX512 void rows_block(const uint64_t* S, int64_t rw, const float* x, float* y, int64_t cols, float xsum) {
  __m512 acc[R][2];
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  constexpr int kStep = kTernary ? 2 : 1;  // words per 64 columns
  const int64_t full = cols / 64;
  for (int64_t k = 0; k < full; ++k) {
    __m512 xv[4];
    for (int q = 0; q < 4; ++q) xv[q] = _mm512_loadu_ps(x + 64 * k + 16 * q);
    for (int i = 0; i < R; ++i) {
      const uint64_t* w = S + i * rw + kStep * k;
      for (int q = 0; q < 4; ++q) {
        if constexpr (kTernary) {
          acc[i][0] = _mm512_mask_add_ps(acc[i][0], mask_at(w, q), acc[i][0], xv[q]);
          acc[i][1] = _mm512_mask_add_ps(acc[i][1], mask_at(w, 4 + q), acc[i][1], xv[q]);
        } else {
          acc[i][q & 1] = _mm512_mask_add_ps(acc[i][q & 1], mask_at(w, q), acc[i][q & 1], xv[q]);
        }
      }
    }
  }
  // The last, partial word: x is read only up to cols (masked loads), and its
  // lanes past cols are masked off the bits as well.
  for (int q = 0; 64 * full + 16 * q < cols; ++q) {
    const int64_t c0 = 64 * full + 16 * q;
    const __mmask16 valid = valid_lanes(c0, cols);
    const __m512 xq = _mm512_maskz_loadu_ps(valid, x + c0);
    for (int i = 0; i < R; ++i) {
      const uint64_t* w = S + i * rw + kStep * full;
      if constexpr (kTernary) {
        acc[i][0] = _mm512_mask_add_ps(acc[i][0], mask_at(w, q) & valid, acc[i][0], xq);
        acc[i][1] = _mm512_mask_add_ps(acc[i][1], mask_at(w, 4 + q) & valid, acc[i][1], xq);
      } else {
        acc[i][q & 1] = _mm512_mask_add_ps(acc[i][q & 1], mask_at(w, q) & valid, acc[i][q & 1], xq);
      }
    }
  }
  for (int i = 0; i < R; ++i) {
    if constexpr (kTernary)
      y[i] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[i][0], acc[i][1]));
    else
      y[i] = 2.0f * _mm512_reduce_add_ps(_mm512_add_ps(acc[i][0], acc[i][1])) - xsum;
  }
}

template <bool kTernary>
SHRINK_AVX512 void rows_all(const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols) {
  const int64_t rw = sign_row_words(kTernary ? SignCode::Ternary : SignCode::Binary, cols);
  const float xsum = kTernary ? 0.0f : sum_x(x, cols);
  int64_t r = 0;
  for (; r + kRows <= rows; r += kRows) rows_block<kRows, kTernary>(S + r * rw, rw, x, y + r, cols, xsum);
  for (; r < rows; ++r) rows_block<1, kTernary>(S + r * rw, rw, x, y + r, cols, xsum);
}

// Several tokens at once (prefill): y[t * ldy + i] for the R rows at S (row
// stride rw words) and the T tokens at x (token stride cols). Each 16-bit
// mask is loaded once and applied to T tokens, so the loop is bound by the
// adds alone; one accumulator per (plane, row, token): 16 independent chains
// (binary R = 4, ternary R = 2; + T x vectors = 20 zmm).
template <int R, int T, bool kTernary>
SHRINK_AVX512_INLINE void tile_step(__m512 (&acc)[kTernary ? 2 : 1][R][T], const uint64_t* S, int64_t rw,
                                    const __m512 (&xv)[T], int64_t c0) {
  constexpr int P = kTernary ? 2 : 1;  // planes
  const int q = static_cast<int>((c0 % 64) / 16);
  for (int i = 0; i < R; ++i)
    for (int p = 0; p < P; ++p) {
      const __mmask16 m = mask_at(S + i * rw + P * (c0 / 64), 4 * p + q);
      for (int t = 0; t < T; ++t) acc[p][i][t] = _mm512_mask_add_ps(acc[p][i][t], m, acc[p][i][t], xv[t]);
    }
}

template <int R, int T, bool kTernary>
SHRINK_AVX512 void tile(const uint64_t* S, int64_t rw, const float* x, int64_t cols, float* y, int64_t ldy,
                        const float* xsum) {
  __m512 acc[kTernary ? 2 : 1][R][T];
  for (auto& plane : acc)
    for (auto& row : plane)
      for (auto& a : row) a = _mm512_setzero_ps();
  __m512 xv[T];
  int64_t c0 = 0;
  // Full chunks and the tail in separate loops: with the tail's branch inside
  // the loop GCC 12 kept the accumulators in memory (16 stores per 16 adds).
  for (; c0 + 16 <= cols; c0 += 16) {
    for (int t = 0; t < T; ++t) xv[t] = _mm512_loadu_ps(x + t * cols + c0);
    tile_step<R, T, kTernary>(acc, S, rw, xv, c0);
  }
  if (c0 < cols) {
    const __mmask16 valid = valid_lanes(c0, cols);
    for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(valid, x + t * cols + c0);
    tile_step<R, T, kTernary>(acc, S, rw, xv, c0);
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) {
      if constexpr (kTernary)
        y[t * ldy + i] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[0][i][t], acc[1][i][t]));
      else
        y[t * ldy + i] = 2.0f * _mm512_reduce_add_ps(acc[0][i][t]) - xsum[t];
    }
}

// All rows for T tokens: row groups of R, then single rows.
template <int T, bool kTernary>
SHRINK_AVX512 void tile_rows(const uint64_t* S, const float* x, float* y, int64_t ldy, int64_t rows, int64_t cols) {
  constexpr int R = kTernary ? 2 : 4;
  const int64_t rw = sign_row_words(kTernary ? SignCode::Ternary : SignCode::Binary, cols);
  float xsum[T] = {};
  if constexpr (!kTernary)
    for (int t = 0; t < T; ++t) xsum[t] = sum_x(x + t * cols, cols);
  int64_t r = 0;
  for (; r + R <= rows; r += R) tile<R, T, kTernary>(S + r * rw, rw, x, cols, y + r, ldy, xsum);
  for (; r < rows; ++r) tile<1, T, kTernary>(S + r * rw, rw, x, cols, y + r, ldy, xsum);
}

template <bool kTernary>
SHRINK_AVX512 void tokens_all(const uint64_t* S, const float* x, int64_t n, float* y, int64_t ldy, int64_t rows,
                              int64_t cols) {
  for (int64_t t0 = 0; t0 < n; t0 += 4) {
    const float* xt = x + t0 * cols;
    float* yt = y + t0 * ldy;
    switch (std::min<int64_t>(4, n - t0)) {
      case 4: tile_rows<4, kTernary>(S, xt, yt, ldy, rows, cols); break;
      case 3: tile_rows<3, kTernary>(S, xt, yt, ldy, rows, cols); break;
      case 2: tile_rows<2, kTernary>(S, xt, yt, ldy, rows, cols); break;
      default: tile_rows<1, kTernary>(S, xt, yt, ldy, rows, cols); break;
    }
  }
}

// 16 columns' values from their masks: binary +1/-1, ternary +1/-1/0.
template <bool kTernary>
SHRINK_AVX512 void unpack_row(const uint64_t* w, float* out, int64_t cols) {
  const __m512 one = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
  for (int64_t c0 = 0; c0 < cols; c0 += 16) {
    const uint64_t* word = w + (kTernary ? 2 : 1) * (c0 / 64);
    const int q = static_cast<int>((c0 % 64) / 16);
    __m512 v;
    if constexpr (kTernary)
      v = _mm512_mask_mov_ps(_mm512_maskz_mov_ps(mask_at(word, q), one), mask_at(word, 4 + q), minus);
    else
      v = _mm512_mask_blend_ps(mask_at(word, q), minus, one);
    if (c0 + 16 <= cols)
      _mm512_storeu_ps(out + c0, v);
    else
      _mm512_mask_storeu_ps(out + c0, valid_lanes(c0, cols), v);
  }
}

}  // namespace

SHRINK_AVX512 void sign_rows_avx512(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows,
                                    int64_t cols) {
  if (code == SignCode::Ternary)
    rows_all<true>(S, x, y, rows, cols);
  else
    rows_all<false>(S, x, y, rows, cols);
}

SHRINK_AVX512 void sign_tokens_avx512(SignCode code, const uint64_t* S, const float* x, int64_t n, float* y,
                                      int64_t ldy, int64_t rows, int64_t cols) {
  if (code == SignCode::Ternary)
    tokens_all<true>(S, x, n, y, ldy, rows, cols);
  else
    tokens_all<false>(S, x, n, y, ldy, rows, cols);
}

SHRINK_AVX512 void sign_unpack_avx512(SignCode code, const uint64_t* S, float* out, int64_t rows, int64_t cols) {
  const int64_t rw = sign_row_words(code, cols);
  for (int64_t r = 0; r < rows; ++r) {
    if (code == SignCode::Ternary)
      unpack_row<true>(S + r * rw, out + r * cols, cols);
    else
      unpack_row<false>(S + r * rw, out + r * cols, cols);
  }
}

}  // namespace shrink::kernels
