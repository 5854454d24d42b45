// AVX2 kernels of group_gemv.h: the AVX-512 design (group_gemv_avx512.cpp)
// with 8 lanes; q8 kernels with vpmaddubsw + vpmaddwd in place of vpdpbusd.
// 4-bit codebooks are looked up in two 8-entry vpermps tables blended on the
// code's bit 3. With 16 ymm registers, fewer rows x inputs are
// computed together. Every (row, input) sum is computed in the same order
// whatever the grouping, so results do not depend on batch size or threads.
#include <immintrin.h>

#include "core/error.h"
#include "kernels/group_gemv_simd.h"

#define SHRINK_AVX2 __attribute__((target("avx2,fma")))
#define SHRINK_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace shrink::kernels::group_impl {

namespace {

constexpr int L = 8;
constexpr int kPrefetchBytes = 1024;

// Lanes i < n set (as a maskload mask: sign bits).
SHRINK_AVX2_INLINE __m256i first_n(int64_t n) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < L ? n : L)), iota);
}

SHRINK_AVX2_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct Lut {
  __m256 lo, hi;
};

template <int B, bool LUT, int K>
SHRINK_AVX2_INLINE __m256 decode(__m256i q, __m256i mask, const Lut& lut) {
  constexpr int PW = 32 / B;
  __m256i c = K == 0 ? q : _mm256_srli_epi32(q, B * K);
  if constexpr (!(K == PW - 1 && B * PW == 32)) c = _mm256_and_si256(c, mask);
  if constexpr (LUT) {
    // vpermps uses the low 3 bits; bit 3 (moved to the sign) picks the table.
    const __m256 lo = _mm256_permutevar8x32_ps(lut.lo, c), hi = _mm256_permutevar8x32_ps(lut.hi, c);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(c, 28)));
  }
  return _mm256_cvtepi32_ps(c);
}

// As block_steps in group_gemv_avx512.cpp, the split by lane done with masks of all-ones lanes.
template <int B, bool LUT, bool S, int R, int NX, int K>
SHRINK_AVX2_INLINE void block_steps(const __m256i* q, const float* xb, int64_t xstride, __m256 (&bacc)[R][NX],
                                    __m256 (&bacc2)[R][NX], __m256i split, __m256i mask, const Lut& lut) {
  if constexpr (K < 32 / B) {
    __m256 xk[NX], xk2[NX];
    const __m256 second = S ? _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(K + 1), split)) : _mm256_setzero_ps();
    for (int t = 0; t < NX; ++t) {
      xk[t] = _mm256_loadu_ps(xb + t * xstride + K * L);
      if constexpr (S) {
        xk2[t] = _mm256_and_ps(second, xk[t]);
        xk[t] = _mm256_andnot_ps(second, xk[t]);
      }
    }
    for (int i = 0; i < R; ++i) {
      const __m256 v = decode<B, LUT, K>(q[i], mask, lut);
      for (int t = 0; t < NX; ++t) {
        bacc[i][t] = _mm256_fmadd_ps(v, xk[t], bacc[i][t]);
        if constexpr (S) bacc2[i][t] = _mm256_fmadd_ps(v, xk2[t], bacc2[i][t]);
      }
    }
    block_steps<B, LUT, S, R, NX, K + 1>(q, xb, xstride, bacc, bacc2, split, mask, lut);
  }
}

// zero_correction (group_gemv_simd.h) 8 groups at a time, in f32.
SHRINK_AVX2_INLINE float zero_corr(const float* s, const float* z, const float* xs, int64_t G) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; g += L) {
    const __m256i m = first_n(G - g);
    acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_maskload_ps(s + g, m), _mm256_maskload_ps(z + g, m)),
                          _mm256_maskload_ps(xs + g, m), acc);
  }
  return hsum(acc);
}

SHRINK_AVX2_INLINE __m256 lane_params(const Plan& p, int64_t b, const float* row, const int32_t* table) {
  const __m256i lg = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + b * L));
  return _mm256_permutevar8x32_ps(_mm256_maskload_ps(row + p.g0[b], first_n(p.ng[b])), lg);
}
SHRINK_AVX2_INLINE __m256 lane_params(const Plan& p, int64_t b, const float* row) {
  return lane_params(p, b, row, p.lane_group);
}

SHRINK_AVX2_INLINE Lut load_lut(const float* levels) {
  if (!levels) return {_mm256_setzero_ps(), _mm256_setzero_ps()};
  return {_mm256_loadu_ps(levels), _mm256_loadu_ps(levels + 8)};
}

template <int B, bool LUT, bool S, int R, int NX>
SHRINK_AVX2 void kernel(const Plan& p, int64_t r, int64_t t0, float* y, int64_t ldy) {
  constexpr int PW = 32 / B;
  const GroupQuantView& w = *p.w;
  const int64_t wpr = w.words_per_row(), stride = w.param_stride(), G = w.n_groups();
  const __m256i mask = _mm256_set1_epi32((1 << B) - 1);
  const Lut lut = load_lut(LUT ? w.levels : nullptr);
  const uint32_t* wr[R];
  const float* sr[R];
  __m256 racc[R][NX];
  for (int i = 0; i < R; ++i) {
    wr[i] = w.packed + (r + i) * wpr;
    sr[i] = w.scale + (r + i) * stride;
    for (int t = 0; t < NX; ++t) racc[i][t] = _mm256_setzero_ps();
  }
  const float* xa = p.xa + t0 * p.xa_cols;
  for (int64_t b = 0; b < p.blocks; ++b) {
    const __m256i m = first_n(wpr - b * L);
    __m256i q[R];
    for (int i = 0; i < R; ++i) {
      q[i] = _mm256_maskload_epi32(reinterpret_cast<const int*>(wr[i] + b * L), m);
      if constexpr (NX == 1) _mm_prefetch(reinterpret_cast<const char*>(wr[i] + b * L) + kPrefetchBytes, _MM_HINT_T0);
    }
    __m256 bacc[R][NX], bacc2[R][NX];
    for (int i = 0; i < R; ++i)
      for (int t = 0; t < NX; ++t) bacc[i][t] = bacc2[i][t] = _mm256_setzero_ps();
    const __m256i split =
        S ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.lane_split + b * L)) : _mm256_setzero_si256();
    block_steps<B, LUT, S, R, NX, 0>(q, xa + b * L * PW, p.xa_cols, bacc, bacc2, split, mask, lut);
    for (int i = 0; i < R; ++i) {
      const __m256 s = lane_params(p, b, sr[i]);
      for (int t = 0; t < NX; ++t) racc[i][t] = _mm256_fmadd_ps(bacc[i][t], s, racc[i][t]);
      if constexpr (S) {
        const __m256 s2 = lane_params(p, b, sr[i], p.lane_group2);
        for (int t = 0; t < NX; ++t) racc[i][t] = _mm256_fmadd_ps(bacc2[i][t], s2, racc[i][t]);
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < NX; ++t) {
      float v = hsum(racc[i][t]);
      if (w.zero) v -= zero_corr(sr[i], w.zero + (r + i) * stride, p.xsum + (t0 + t) * G, G);
      y[(t0 + t) * ldy + r + i] = v;
    }
}

// 16 ymm registers: rows in twos, inputs in twos (a split kernel, with a third
// set of accumulators, takes inputs one at a time).
template <int B, bool LUT, bool S>
SHRINK_AVX2 void rows_t(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    int64_t t = 0;
    if constexpr (!S)
      for (; t + 2 <= p.n; t += 2) kernel<B, LUT, S, 2, 2>(p, r, t, y, ldy);
    for (; t < p.n; ++t) kernel<B, LUT, S, 2, 1>(p, r, t, y, ldy);
  }
  for (; r < r1; ++r) {
    int64_t t = 0;
    if constexpr (!S)
      for (; t + 2 <= p.n; t += 2) kernel<B, LUT, S, 1, 2>(p, r, t, y, ldy);
    for (; t < p.n; ++t) kernel<B, LUT, S, 1, 1>(p, r, t, y, ldy);
  }
}

template <int B, bool LUT, bool S, int K>
SHRINK_AVX2_INLINE void dequant_steps(__m256i q, __m256 s, __m256 z, __m256 s2, __m256 z2, __m256i split, float* o,
                                      __m256i mask, const Lut& lut) {
  if constexpr (K < 32 / B) {
    __m256 sk = s, zk = z;
    if constexpr (S) {
      const __m256 second = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(K + 1), split));
      sk = _mm256_blendv_ps(s, s2, second);
      zk = _mm256_blendv_ps(z, z2, second);
    }
    _mm256_storeu_ps(o + K * L, _mm256_mul_ps(sk, _mm256_sub_ps(decode<B, LUT, K>(q, mask, lut), zk)));
    dequant_steps<B, LUT, S, K + 1>(q, s, z, s2, z2, split, o, mask, lut);
  }
}

template <int B, bool LUT, bool S>
SHRINK_AVX2 void dequant_t(const Plan& p, int64_t r0, int64_t r1, float* out) {
  constexpr int PW = 32 / B;
  const GroupQuantView& w = *p.w;
  const int64_t wpr = w.words_per_row(), stride = w.param_stride();
  const __m256i mask = _mm256_set1_epi32((1 << B) - 1);
  const Lut lut = load_lut(LUT ? w.levels : nullptr);
  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t* wr = w.packed + r * wpr;
    const float* sr = w.scale + r * stride;
    const float* zr = w.zero ? w.zero + r * stride : nullptr;
    float* o = out + (r - r0) * p.xa_cols;
    for (int64_t b = 0; b < p.blocks; ++b) {
      const __m256i q = _mm256_maskload_epi32(reinterpret_cast<const int*>(wr + b * L), first_n(wpr - b * L));
      const __m256 s = lane_params(p, b, sr);
      const __m256 z = zr ? lane_params(p, b, zr) : _mm256_setzero_ps();
      __m256 s2 = s, z2 = z;
      __m256i split = _mm256_setzero_si256();
      if constexpr (S) {
        s2 = lane_params(p, b, sr, p.lane_group2);
        z2 = zr ? lane_params(p, b, zr, p.lane_group2) : _mm256_setzero_ps();
        split = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.lane_split + b * L));
      }
      dequant_steps<B, LUT, S, 0>(q, s, z, s2, z2, split, o + b * L * PW, mask, lut);
    }
  }
}

// ---------------------------------------------------------------- q8

// Sums of 4 adjacent u8 x s8 byte products per int32 lane (vpdpbusd's
// arithmetic): vpmaddubsw then vpmaddwd with ones. Codes < 16 keep the int16
// pair sums (<= 2 * 15 * 127) from saturating; 8-bit codes go as two nibbles.
template <int B>
SHRINK_AVX2_INLINE __m256i dot4(__m256i c, __m256i x) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (B < 8) return _mm256_madd_epi16(_mm256_maddubs_epi16(c, x), ones);
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(c, nib), x), ones);
  const __m256i hi = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(c, 4), nib), x), ones);
  return _mm256_add_epi32(lo, _mm256_slli_epi32(hi, 4));
}

template <int B, int R, int NX, int K>
SHRINK_AVX2_INLINE void q8_steps(const __m256i* q, const int8_t* xb, int64_t xstride, __m256i (&iacc)[R][NX],
                                 __m256i bmask) {
  if constexpr (K < 8 / B) {
    __m256i xk[NX];
    for (int t = 0; t < NX; ++t)
      xk[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + t * xstride + K * 64));
    for (int i = 0; i < R; ++i) {
      __m256i c = q[i];
      if constexpr (B < 8) c = _mm256_and_si256(K == 0 ? c : _mm256_srli_epi32(c, B * K), bmask);
      for (int t = 0; t < NX; ++t) iacc[i][t] = _mm256_add_epi32(iacc[i][t], dot4<B>(c, xk[t]));
    }
    q8_steps<B, R, NX, K + 1>(q, xb, xstride, iacc, bmask);
  }
}

// As kernel_q8 in group_gemv_avx512.cpp; each 16-word activation block in two
// halves of 8 words (lane tables of 8: half h of block b is table block 2b + h).
template <int B, int R, int NX>
SHRINK_AVX2 void kernel_q8(const Plan& p, int64_t r, int64_t t0, float* y, int64_t ldy) {
  constexpr int CPB = 8 / B;
  const GroupQuantView& w = *p.w;
  const int64_t wpr = w.words_per_row(), stride = w.param_stride(), G = w.n_groups();
  const __m256i bmask = _mm256_set1_epi8(static_cast<char>((1 << B) - 1));
  const uint32_t* wr[R];
  const float* sr[R];
  __m256 racc[R][NX];
  for (int i = 0; i < R; ++i) {
    wr[i] = w.packed + (r + i) * wpr;
    sr[i] = w.scale + (r + i) * stride;
    for (int t = 0; t < NX; ++t) racc[i][t] = _mm256_setzero_ps();
  }
  const int8_t* xq = p.xq + t0 * p.xq_stride;
  const float* dx = p.dx + t0 * p.q8_blocks;
  for (int64_t b = 0; b < p.q8_blocks; ++b)
    for (int64_t h = 0; h < 2 && b * 16 + h * L < wpr; ++h) {
      const int64_t w0 = b * 16 + h * L;
      const __m256i m = first_n(wpr - w0);
      __m256i q[R];
      for (int i = 0; i < R; ++i) {
        q[i] = _mm256_maskload_epi32(reinterpret_cast<const int*>(wr[i] + w0), m);
        if constexpr (NX == 1) _mm_prefetch(reinterpret_cast<const char*>(wr[i] + w0) + kPrefetchBytes, _MM_HINT_T0);
      }
      __m256i iacc[R][NX];
      for (int i = 0; i < R; ++i)
        for (int t = 0; t < NX; ++t) iacc[i][t] = _mm256_setzero_si256();
      q8_steps<B, R, NX, 0>(q, xq + b * CPB * 64 + h * 32, p.xq_stride, iacc, bmask);
      for (int i = 0; i < R; ++i) {
        const __m256 s = lane_params(p, 2 * b + h, sr[i]);
        for (int t = 0; t < NX; ++t) {
          const __m256 sd = _mm256_mul_ps(s, _mm256_set1_ps(dx[t * p.q8_blocks + b]));
          racc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[i][t]), sd, racc[i][t]);
        }
      }
    }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < NX; ++t) {
      float v = hsum(racc[i][t]);
      if (w.zero) v -= zero_corr(sr[i], w.zero + (r + i) * stride, p.xsum + (t0 + t) * G, G);
      y[(t0 + t) * ldy + r + i] = v;
    }
}

template <int B>
SHRINK_AVX2 void rows_q8_t(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    int64_t t = 0;
    for (; t + 2 <= p.n; t += 2) kernel_q8<B, 2, 2>(p, r, t, y, ldy);
    for (; t < p.n; ++t) kernel_q8<B, 2, 1>(p, r, t, y, ldy);
  }
  for (; r < r1; ++r)
    for (int64_t t = 0; t < p.n; ++t) kernel_q8<B, 1, 1>(p, r, t, y, ldy);
}

}  // namespace

void rows_q8_avx2(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  switch (p.w->bits) {
    case 2: return rows_q8_t<2>(p, r0, r1, y, ldy);
    case 4: return rows_q8_t<4>(p, r0, r1, y, ldy);
    case 8: return rows_q8_t<8>(p, r0, r1, y, ldy);
    default: fail("group kernel: no q8 kernel for ", p.w->bits, " bits");
  }
}

void rows_avx2(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  by_bits(p, [&]<int B, bool LUT, bool S>() { rows_t<B, LUT, S>(p, r0, r1, y, ldy); });
}

void dequant_avx2(const Plan& p, int64_t r0, int64_t r1, float* out) {
  by_bits(p, [&]<int B, bool LUT, bool S>() { dequant_t<B, LUT, S>(p, r0, r1, out); });
}

}  // namespace shrink::kernels::group_impl
