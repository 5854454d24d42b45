// AVX-512 primitives of the int8-KV-cache attention (compiled with a target
// attribute; only called when the CPU reports AVX-512F/BW/VL). Scores: key
// codes widened to int16 and multiplied with the query's int16 codes by
// vpmaddwd, 32 per instruction, summed exactly in int32. Values: codes widened
// int8 -> int32 -> f32 sixteen at a time and accumulated in f32. head_dim
// tails use masked byte loads, so no row is read past its end.
// GCC 12's AVX-512 headers trip -Wuninitialized (GCC PR 105593); see gemv_avx512.cpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdint>

#include "kernels/attention_q8.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,fma"), always_inline)) inline

namespace shrink::kernels::q8attn {

namespace {

// 16 codes at p as f32; `m` selects the lanes loaded (the others are 0).
SHRINK_AVX512_INLINE __m512 widen16(const int8_t* p, __mmask16 m) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

SHRINK_AVX512_INLINE __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1); }

// Software prefetch of the rows kPrefetchBytes ahead (at least one row): on
// one thread the hardware prefetchers alone leave the long-context decode
// loops at about half of the DRAM read bandwidth.
constexpr int64_t kPrefetchBytes = 2048;

SHRINK_AVX512_INLINE void prefetch_row(const int8_t* row, int64_t head_dim) {
  for (int64_t d = 0; d < head_dim; d += 64) _mm_prefetch(reinterpret_cast<const char*>(row + d), _MM_HINT_T0);
}

// R rows of scores at once (independent accumulators). Integer sums are
// exact, so the result does not depend on R or on the order.
template <int R>
SHRINK_AVX512_INLINE void scores_rows(const int16_t* e, float dq, const int8_t* k, const float* ks, int64_t kv_stride,
                                      int64_t s_stride, int64_t head_dim, float scale, float* scores) {
  __m512i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
  int64_t d = 0;
  for (; d + 32 <= head_dim; d += 32) {
    const __m512i ev = _mm512_loadu_si512(e + d);
    for (int r = 0; r < R; ++r) {
      const auto* p = reinterpret_cast<const __m256i*>(k + r * kv_stride + d);
      const __m512i kv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(p));
      acc[r] = _mm512_add_epi32(acc[r], _mm512_madd_epi16(kv, ev));
    }
  }
  if (d < head_dim) {  // e is zero-padded to 32; the codes are loaded masked
    const __mmask32 m = __mmask32((uint64_t{1} << (head_dim - d)) - 1);
    const __m512i ev = _mm512_loadu_si512(e + d);
    for (int r = 0; r < R; ++r) {
      const __m512i kv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, k + r * kv_stride + d));
      acc[r] = _mm512_add_epi32(acc[r], _mm512_madd_epi16(kv, ev));
    }
  }
  for (int r = 0; r < R; ++r)
    scores[r] = float(_mm512_reduce_add_epi32(acc[r])) * (dq * ks[r * s_stride] * scale);
}

SHRINK_AVX512 void scores_avx512(const int16_t* e, float dq, const int8_t* k, const float* ks, int64_t len,
                                 int64_t kv_stride, int64_t s_stride, int64_t head_dim, float scale, float* scores) {
  const int64_t ahead = std::max<int64_t>(4, kPrefetchBytes / head_dim);
  int64_t j = 0;
  for (; j + 4 <= len; j += 4) {
    for (int r = 0; r < 4; ++r) prefetch_row(k + (j + ahead + r) * kv_stride, head_dim);
    scores_rows<4>(e, dq, k + j * kv_stride, ks + j * s_stride, kv_stride, s_stride, head_dim, scale, scores + j);
  }
  for (; j < len; ++j)
    scores_rows<1>(e, dq, k + j * kv_stride, ks + j * s_stride, kv_stride, s_stride, head_dim, scale, scores + j);
}

// out[d0 .. d0 + 16*C) (the last vector masked by `last`) = sum_j w_j v_j[...].
template <int C>
SHRINK_AVX512_INLINE void accum_cols(const float* p, const int8_t* v, const float* vs, int64_t len, int64_t kv_stride,
                                     int64_t s_stride, __mmask16 last, float* out) {
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  const int64_t ahead = std::max<int64_t>(1, kPrefetchBytes / (16 * C));
  for (int64_t j = 0; j < len; ++j) {
    const char* pf = reinterpret_cast<const char*>(v + (j + ahead) * kv_stride);
    for (int c = 0; c < C; c += 4) _mm_prefetch(pf + 16 * c, _MM_HINT_T0);
    const __m512 w = _mm512_set1_ps(p[j] * vs[j * s_stride]);
    const int8_t* vj = v + j * kv_stride;
    for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(w, widen16(vj + 16 * c, c == C - 1 ? last : 0xFFFF), acc[c]);
  }
  for (int c = 0; c < C - 1; ++c) _mm512_storeu_ps(out + 16 * c, acc[c]);
  _mm512_mask_storeu_ps(out + 16 * (C - 1), last, acc[C - 1]);
}

SHRINK_AVX512 void accum_avx512(const float* p, const int8_t* v, const float* vs, int64_t len, int64_t kv_stride,
                                int64_t s_stride, int64_t head_dim, float* out) {
  // Up to 128 columns (8 accumulators) per pass over the rows: head_dim <= 128
  // reads each row once, front to back.
  for (int64_t d0 = 0; d0 < head_dim; d0 += 128) {
    const int64_t n = std::min<int64_t>(128, head_dim - d0);
    const int C = int((n + 15) / 16);
    const __mmask16 last = n % 16 ? tail_mask(n % 16) : __mmask16(0xFFFF);
    const int8_t* vd = v + d0;
    float* od = out + d0;
    switch (C) {
      case 1: accum_cols<1>(p, vd, vs, len, kv_stride, s_stride, last, od); break;
      case 2: accum_cols<2>(p, vd, vs, len, kv_stride, s_stride, last, od); break;
      case 3: accum_cols<3>(p, vd, vs, len, kv_stride, s_stride, last, od); break;
      case 4: accum_cols<4>(p, vd, vs, len, kv_stride, s_stride, last, od); break;
      case 5: accum_cols<5>(p, vd, vs, len, kv_stride, s_stride, last, od); break;
      case 6: accum_cols<6>(p, vd, vs, len, kv_stride, s_stride, last, od); break;
      case 7: accum_cols<7>(p, vd, vs, len, kv_stride, s_stride, last, od); break;
      default: accum_cols<8>(p, vd, vs, len, kv_stride, s_stride, last, od); break;
    }
  }
}

SHRINK_AVX512 void dequant_avx512(const int8_t* q, const float* s, int64_t rows, int64_t cols, float* x) {
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 d = _mm512_set1_ps(s[r]);
    const int8_t* qr = q + r * cols;
    float* xr = x + r * cols;
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) _mm512_storeu_ps(xr + c, _mm512_mul_ps(d, widen16(qr + c, 0xFFFF)));
    if (c < cols) {
      const __mmask16 m = tail_mask(cols - c);
      _mm512_mask_storeu_ps(xr + c, m, _mm512_mul_ps(d, widen16(qr + c, m)));
    }
  }
}

}  // namespace

extern const Kernels kAvx512;
const Kernels kAvx512{"avx512", scores_avx512, accum_avx512, dequant_avx512};

}  // namespace shrink::kernels::q8attn
