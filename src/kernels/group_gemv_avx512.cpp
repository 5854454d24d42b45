// AVX-512 kernels of group_gemv.h: one packed word per lane (16 lanes), code
// k of every word by a shift of bits*k and a mask, converted to f32 (4-bit
// codes: looked up with one vpermps) and multiplied with x in lane order
// (group_gemv_simd.h); the q8 kernels (AVX512-VNNI) multiply byte-masked codes
// with int8 x by vpdpbusd, 4 products summed per word lane, exactly. Per block of 16 words, the lanes' sums are scaled
// by their groups' scales (a masked load of the block's few scales and a
// vpermps) into the row's accumulator. The f32 kernels use only AVX-512F +
// FMA; the q8 ones also AVX512-BW and VNNI (dispatch checks VNNI).
//
// R rows and NX inputs are computed together: the R rows are R DRAM streams
// (each prefetched ahead, as gemv_avx512.cpp), the NX inputs reuse each
// decoded code. Every (row, input) sum is computed in the same order whatever
// R and NX are, so results do not depend on batch size or thread count.
//
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever such an intrinsic is inlined (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "core/error.h"
#include "kernels/group_gemv_simd.h"
#include "kernels/row_slabs.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,fma")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,fma"), always_inline)) inline

namespace shrink::kernels::group_impl {

namespace {

constexpr int L = 16;
constexpr int kPrefetchBytes = 1024;  // per row stream, as gemv_avx512.cpp

SHRINK_AVX512_INLINE __mmask16 first_n(int64_t n) {
  return n >= L ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

// Code K of every word, as f32 level values. 4-bit codes are looked up with
// one vpermps, which reads only the index's low 4 bits: no mask, no convert
// (the table is 0..15 for integer codes, the codebook otherwise).
template <int B, bool LUT, int K>
SHRINK_AVX512_INLINE __m512 decode(__m512i q, __m512i mask, __m512 lut) {
  constexpr int PW = 32 / B;
  __m512i c = K == 0 ? q : _mm512_srli_epi32(q, B * K);
  if constexpr (B == 4) return _mm512_permutexvar_ps(c, lut);
  if constexpr (!(K == PW - 1 && B * PW == 32)) c = _mm512_and_si512(c, mask);  // the top code needs no mask
  if constexpr (LUT) return _mm512_permutexvar_ps(c, lut);
  return _mm512_cvtepi32_ps(c);
}

template <int B, bool LUT>
SHRINK_AVX512_INLINE __m512 load_lut(const float* levels) {
  if constexpr (LUT) return _mm512_loadu_ps(levels);
  if constexpr (B == 4) return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_setzero_ps();
}

// bacc[i][t] += level(code K of rows' words) * x_t for codes K .. PW-1. With
// S (Plan::split), codes in their word's second group go to bacc2 instead:
// x is split by lane on code K >= the lane's split point, so each sum keeps
// the order it has without the split.
template <int B, bool LUT, bool S, int R, int NX, int K>
SHRINK_AVX512_INLINE void block_steps(const __m512i* q, const float* xb, int64_t xstride, __m512 (&bacc)[R][NX],
                                      __m512 (&bacc2)[R][NX], __m512i split, __m512i mask, __m512 lut) {
  if constexpr (K < 32 / B) {
    __m512 xk[NX], xk2[NX];
    const __mmask16 second = S ? _mm512_cmple_epi32_mask(split, _mm512_set1_epi32(K)) : 0;
    for (int t = 0; t < NX; ++t) {
      xk[t] = _mm512_loadu_ps(xb + t * xstride + K * L);
      if constexpr (S) {
        xk2[t] = _mm512_maskz_mov_ps(second, xk[t]);
        xk[t] = _mm512_maskz_mov_ps(static_cast<__mmask16>(~second), xk[t]);
      }
    }
    for (int i = 0; i < R; ++i) {
      const __m512 v = decode<B, LUT, K>(q[i], mask, lut);
      for (int t = 0; t < NX; ++t) {
        bacc[i][t] = _mm512_fmadd_ps(v, xk[t], bacc[i][t]);
        if constexpr (S) bacc2[i][t] = _mm512_fmadd_ps(v, xk2[t], bacc2[i][t]);
      }
    }
    block_steps<B, LUT, S, R, NX, K + 1>(q, xb, xstride, bacc, bacc2, split, mask, lut);
  }
}

// zero_correction (group_gemv_simd.h) 16 groups at a time, in f32.
SHRINK_AVX512_INLINE float zero_corr(const float* s, const float* z, const float* xs, int64_t G) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; g += L) {
    const __mmask16 m = first_n(G - g);
    acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + g), _mm512_maskz_loadu_ps(m, z + g)),
                          _mm512_maskz_loadu_ps(m, xs + g), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// The block's per-lane scales (or zeros) of one row: p.ng[b] values from row + p.g0[b], spread to
// lanes by a lane table (p.lane_group: each word's first group; p.lane_group2: its last).
SHRINK_AVX512_INLINE __m512 lane_params(const Plan& p, int64_t b, const float* row, const int32_t* table) {
  const __m512i lg = _mm512_loadu_si512(table + b * L);
  return _mm512_permutexvar_ps(lg, _mm512_maskz_loadu_ps(first_n(p.ng[b]), row + p.g0[b]));
}
SHRINK_AVX512_INLINE __m512 lane_params(const Plan& p, int64_t b, const float* row) {
  return lane_params(p, b, row, p.lane_group);
}

// Rows r .. r+R-1 against inputs t0 .. t0+NX-1.
template <int B, bool LUT, bool S, int R, int NX>
SHRINK_AVX512 void kernel(const Plan& p, int64_t r, int64_t t0, float* y, int64_t ldy) {
  constexpr int PW = 32 / B;
  const GroupQuantView& w = *p.w;
  const int64_t wpr = w.words_per_row(), stride = w.param_stride(), G = w.n_groups();
  const __m512i mask = _mm512_set1_epi32((1 << B) - 1);
  const __m512 lut = load_lut<B, LUT>(w.levels);
  const uint32_t* wr[R];
  const float* sr[R];
  __m512 racc[R][NX];
  for (int i = 0; i < R; ++i) {
    wr[i] = w.packed + (r + i) * wpr;
    sr[i] = w.scale + (r + i) * stride;
    for (int t = 0; t < NX; ++t) racc[i][t] = _mm512_setzero_ps();
  }
  const float* xa = p.xa + t0 * p.xa_cols;
  for (int64_t b = 0; b < p.blocks; ++b) {
    const __mmask16 m = first_n(wpr - b * L);
    __m512i q[R];
    for (int i = 0; i < R; ++i) {
      q[i] = _mm512_maskz_loadu_epi32(m, wr[i] + b * L);
      if constexpr (NX == 1) _mm_prefetch(reinterpret_cast<const char*>(wr[i] + b * L) + kPrefetchBytes, _MM_HINT_T0);
    }
    __m512 bacc[R][NX], bacc2[R][NX];
    for (int i = 0; i < R; ++i)
      for (int t = 0; t < NX; ++t) bacc[i][t] = bacc2[i][t] = _mm512_setzero_ps();
    const __m512i split = S ? _mm512_loadu_si512(p.lane_split + b * L) : _mm512_setzero_si512();
    block_steps<B, LUT, S, R, NX, 0>(q, xa + b * L * PW, p.xa_cols, bacc, bacc2, split, mask, lut);
    for (int i = 0; i < R; ++i) {
      const __m512 s = lane_params(p, b, sr[i]);
      for (int t = 0; t < NX; ++t) racc[i][t] = _mm512_fmadd_ps(bacc[i][t], s, racc[i][t]);
      if constexpr (S) {
        const __m512 s2 = lane_params(p, b, sr[i], p.lane_group2);
        for (int t = 0; t < NX; ++t) racc[i][t] = _mm512_fmadd_ps(bacc2[i][t], s2, racc[i][t]);
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < NX; ++t) {
      float v = _mm512_reduce_add_ps(racc[i][t]);
      if (w.zero) v -= zero_corr(sr[i], w.zero + (r + i) * stride, p.xsum + (t0 + t) * G, G);
      y[(t0 + t) * ldy + r + i] = v;
    }
}

// 4 rows at a time (4 DRAM streams per thread), then single rows; inputs in
// fours, twos and ones (32 zmm registers hold R * NX * 2 accumulators + codes;
// a split kernel has a third set, so takes at most 2 x 2 or 4 x 1).
template <int B, bool LUT, bool S>
SHRINK_AVX512 void rows_t(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    int64_t t = 0;
    if constexpr (!S)
      for (; t + 4 <= p.n; t += 4) {
        kernel<B, LUT, S, 2, 4>(p, r, t, y, ldy);
        kernel<B, LUT, S, 2, 4>(p, r + 2, t, y, ldy);
      }
    for (; t + 2 <= p.n; t += 2) {
      if constexpr (S) {
        kernel<B, LUT, S, 2, 2>(p, r, t, y, ldy);
        kernel<B, LUT, S, 2, 2>(p, r + 2, t, y, ldy);
      } else {
        kernel<B, LUT, S, 4, 2>(p, r, t, y, ldy);
      }
    }
    for (; t < p.n; ++t) kernel<B, LUT, S, 4, 1>(p, r, t, y, ldy);
  }
  for (; r < r1; ++r) {
    int64_t t = 0;
    if constexpr (!S)
      for (; t + 4 <= p.n; t += 4) kernel<B, LUT, S, 1, 4>(p, r, t, y, ldy);
    for (; t + 2 <= p.n; t += 2) kernel<B, LUT, S, 1, 2>(p, r, t, y, ldy);
    for (; t < p.n; ++t) kernel<B, LUT, S, 1, 1>(p, r, t, y, ldy);
  }
}

// scale * (level - zero) of every code, in the order of group_dequantize_row;
// with S, codes K >= the lane's split point take its second group's s2, z2.
template <int B, bool LUT, bool S, int K>
SHRINK_AVX512_INLINE void dequant_steps(__m512i q, __m512 s, __m512 z, __m512 s2, __m512 z2, __m512i split, float* o,
                                        __m512i mask, __m512 lut) {
  if constexpr (K < 32 / B) {
    __m512 sk = s, zk = z;
    if constexpr (S) {
      const __mmask16 second = _mm512_cmple_epi32_mask(split, _mm512_set1_epi32(K));
      sk = _mm512_mask_blend_ps(second, s, s2);
      zk = _mm512_mask_blend_ps(second, z, z2);
    }
    _mm512_storeu_ps(o + K * L, _mm512_mul_ps(sk, _mm512_sub_ps(decode<B, LUT, K>(q, mask, lut), zk)));
    dequant_steps<B, LUT, S, K + 1>(q, s, z, s2, z2, split, o, mask, lut);
  }
}

template <int B, bool LUT, bool S>
SHRINK_AVX512 void dequant_t(const Plan& p, int64_t r0, int64_t r1, float* out) {
  constexpr int PW = 32 / B;
  const GroupQuantView& w = *p.w;
  const int64_t wpr = w.words_per_row(), stride = w.param_stride();
  const __m512i mask = _mm512_set1_epi32((1 << B) - 1);
  const __m512 lut = load_lut<B, LUT>(w.levels);
  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t* wr = w.packed + r * wpr;
    const float* sr = w.scale + r * stride;
    const float* zr = w.zero ? w.zero + r * stride : nullptr;
    float* o = out + (r - r0) * p.xa_cols;
    for (int64_t b = 0; b < p.blocks; ++b) {
      const __m512i q = _mm512_maskz_loadu_epi32(first_n(wpr - b * L), wr + b * L);
      const __m512 s = lane_params(p, b, sr);
      const __m512 z = zr ? lane_params(p, b, zr) : _mm512_setzero_ps();
      __m512 s2 = s, z2 = z;
      __m512i split = _mm512_setzero_si512();
      if constexpr (S) {
        s2 = lane_params(p, b, sr, p.lane_group2);
        z2 = zr ? lane_params(p, b, zr, p.lane_group2) : _mm512_setzero_ps();
        split = _mm512_loadu_si512(p.lane_split + b * L);
      }
      dequant_steps<B, LUT, S, 0>(q, s, z, s2, z2, split, o + b * L * PW, mask, lut);
    }
  }
}

// ---------------------------------------------------------------- q8 (VNNI)

#define SHRINK_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,fma")))
#define SHRINK_VNNI_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni,fma"), always_inline)) inline

// iacc[i][t] += sum over each word's bytes of code K (of every byte) * int8 x.
template <int B, int R, int NX, int K>
SHRINK_VNNI_INLINE void q8_steps(const __m512i* q, const int8_t* xb, int64_t xstride, __m512i (&iacc)[R][NX],
                                 __m512i bmask) {
  if constexpr (K < 8 / B) {
    __m512i xk[NX];
    for (int t = 0; t < NX; ++t) xk[t] = _mm512_loadu_si512(xb + t * xstride + K * 64);
    for (int i = 0; i < R; ++i) {
      __m512i c = q[i];
      if constexpr (B < 8) c = _mm512_and_si512(K == 0 ? c : _mm512_srli_epi32(c, B * K), bmask);
      for (int t = 0; t < NX; ++t) iacc[i][t] = _mm512_dpbusd_epi32(iacc[i][t], c, xk[t]);
    }
    q8_steps<B, R, NX, K + 1>(q, xb, xstride, iacc, bmask);
  }
}

// Rows r, r + rs, .., r + (R-1) rs against inputs t0 .. t0+NX-1: per block of
// 16 words, the exact integer sums of each word, then * (scale of the word's
// group * dx). rs > 1 walks R far-apart runs of rows in step (decode: R
// independent DRAM streams, as gemv_avx512.cpp); each row's arithmetic is
// the same whatever R and rs are.
// kBlockGroup: every block lies in one group (int4 g128, int8 g64+, per
// channel, per tensor), so its scale is one broadcast instead of a lane table.
template <int B, int R, int NX, bool kBlockGroup>
SHRINK_VNNI void kernel_q8(const Plan& p, int64_t r, int64_t rs, int64_t t0, float* y, int64_t ldy) {
  constexpr int CPB = 8 / B;
  const GroupQuantView& w = *p.w;
  const int64_t wpr = w.words_per_row(), stride = w.param_stride(), G = w.n_groups(), full = wpr / L;
  const __mmask16 tail = first_n(wpr - full * L);
  const __m512i bmask = _mm512_set1_epi8(static_cast<char>((1 << B) - 1));
  const uint32_t* wr[R];
  const float* sr[R];
  __m512 racc[R][NX];
  for (int i = 0; i < R; ++i) {
    wr[i] = w.packed + (r + i * rs) * wpr;
    sr[i] = w.scale + (r + i * rs) * stride;
    for (int t = 0; t < NX; ++t) racc[i][t] = _mm512_setzero_ps();
  }
  const int8_t* xq = p.xq + t0 * p.xq_stride;
  const float* dx = p.dx + t0 * p.q8_blocks;
  for (int64_t b = 0; b < p.q8_blocks; ++b) {
    const __mmask16 m = b < full ? __mmask16(0xFFFF) : tail;
    __m512i q[R];
    for (int i = 0; i < R; ++i) {
      q[i] = _mm512_maskz_loadu_epi32(m, wr[i] + b * L);
      if constexpr (NX == 1) _mm_prefetch(reinterpret_cast<const char*>(wr[i] + b * L) + kPrefetchBytes, _MM_HINT_T0);
    }
    __m512i iacc[R][NX];
    for (int i = 0; i < R; ++i)
      for (int t = 0; t < NX; ++t) iacc[i][t] = _mm512_setzero_si512();
    q8_steps<B, R, NX, 0>(q, xq + b * CPB * 64, p.xq_stride, iacc, bmask);
    __m512 d[NX];
    for (int t = 0; t < NX; ++t) d[t] = _mm512_set1_ps(dx[t * p.q8_blocks + b]);
    for (int i = 0; i < R; ++i) {
      const __m512 s = kBlockGroup ? _mm512_set1_ps(sr[i][p.g0[b]]) : lane_params(p, b, sr[i]);
      for (int t = 0; t < NX; ++t)
        racc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[i][t]), _mm512_mul_ps(s, d[t]), racc[i][t]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < NX; ++t) {
      float v = _mm512_reduce_add_ps(racc[i][t]);
      if (w.zero) v -= zero_corr(sr[i], w.zero + (r + i * rs) * stride, p.xsum + (t0 + t) * G, G);
      y[(t0 + t) * ldy + r + i * rs] = v;
    }
}

// One input (decode): kRuns far-apart runs of the slab's rows walked in step,
// the run length nudged off multiples of 4 KiB so the streams do not alias in
// the L1 sets (as rows_in_runs in qdot_avx512.cpp); the remainder one by one.
// Against the 4 adjacent rows used before (session 9, one thread, same run): int4g128 streamed from
// DRAM 12.1 -> 23.5 Gweights/s (BM_GroupGemvStream), from L2/L3 20.5 -> 28.0 (BM_GroupGemvCached).
// kRuns where the wide walk pays, half as many otherwise (walks_wide, row_slabs.h).
constexpr int kRuns = 8;
template <int B, bool kBlockGroup, int Runs>
SHRINK_VNNI void rows_q8_runs(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int64_t row_bytes = p.w->words_per_row() * int64_t{sizeof(uint32_t)};
  int64_t run = (r1 - r0) / Runs;
  if (run > 1 && (run * row_bytes) % 4096 == 0 && row_bytes % 4096 != 0) --run;
  for (int64_t i = 0; i < run; ++i) kernel_q8<B, Runs, 1, kBlockGroup>(p, r0 + i, run, 0, y, ldy);
  for (int64_t r = r0 + run * Runs; r < r1; ++r) kernel_q8<B, 1, 1, kBlockGroup>(p, r, 1, 0, y, ldy);
}

template <int B, bool kBlockGroup>
SHRINK_VNNI void rows_q8_t(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  if (p.n == 1 && r1 - r0 >= 2 * kRuns)
    return walks_wide() ? rows_q8_runs<B, kBlockGroup, kRuns>(p, r0, r1, y, ldy)
                               : rows_q8_runs<B, kBlockGroup, kRuns / 2>(p, r0, r1, y, ldy);
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    int64_t t = 0;
    for (; t + 4 <= p.n; t += 4) {
      kernel_q8<B, 2, 4, kBlockGroup>(p, r, 1, t, y, ldy);
      kernel_q8<B, 2, 4, kBlockGroup>(p, r + 2, 1, t, y, ldy);
    }
    for (; t + 2 <= p.n; t += 2) kernel_q8<B, 4, 2, kBlockGroup>(p, r, 1, t, y, ldy);
    for (; t < p.n; ++t) kernel_q8<B, 4, 1, kBlockGroup>(p, r, 1, t, y, ldy);
  }
  for (; r < r1; ++r)
    for (int64_t t = 0; t < p.n; ++t) kernel_q8<B, 1, 1, kBlockGroup>(p, r, 1, t, y, ldy);
}

template <int B>
void rows_q8_bits(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const GroupQuantView& w = *p.w;
  if (w.n_groups() == 1 || w.group_len % (L * w.per_word()) == 0) return rows_q8_t<B, true>(p, r0, r1, y, ldy);
  rows_q8_t<B, false>(p, r0, r1, y, ldy);
}

}  // namespace

void rows_q8_avx512(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  switch (p.w->bits) {
    case 2: return rows_q8_bits<2>(p, r0, r1, y, ldy);
    case 4: return rows_q8_bits<4>(p, r0, r1, y, ldy);
    case 8: return rows_q8_bits<8>(p, r0, r1, y, ldy);
    default: fail("group kernel: no q8 kernel for ", p.w->bits, " bits");
  }
}

void rows_avx512(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  by_bits(p, [&]<int B, bool LUT, bool S>() { rows_t<B, LUT, S>(p, r0, r1, y, ldy); });
}

void dequant_avx512(const Plan& p, int64_t r0, int64_t r1, float* out) {
  by_bits(p, [&]<int B, bool LUT, bool S>() { dequant_t<B, LUT, S>(p, r0, r1, out); });
}

}  // namespace shrink::kernels::group_impl
