// AVX-512 primitives of f32 decode attention (attention_f32.h; compiled with a
// target attribute, only called when the CPU reports AVX-512F/BW/VL). Both
// loops walk the panel's two halves in step (two DRAM streams). Scores: four
// keys at a time, one FMA chain each; values: up to 128 output columns per pass
// over the rows, in two sets of accumulators. head_dim tails by masked loads,
// so no row is read past its end.
// GCC 12's AVX-512 headers trip -Wuninitialized (GCC PR 105593); see gemv_avx512.cpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdint>

#include "kernels/attention_f32.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,fma"), always_inline)) inline

namespace shrink::kernels::f32attn {

namespace {

SHRINK_AVX512_INLINE __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1); }

// Rows are prefetched this far ahead (at least one row): a head's panel is too
// short for the hardware prefetchers to ramp up on (session 11: +4-5% decode).
constexpr int64_t kPrefetchBytes = 2048;

SHRINK_AVX512_INLINE void prefetch_row(const float* row, int64_t head_dim) {
  for (int64_t d = 0; d < head_dim; d += 16) _mm_prefetch(reinterpret_cast<const char*>(row + d), _MM_HINT_T0);
}

// *out[r] = dot(q, rows[r]) * scale for r < R, one FMA chain per row.
template <int R>
SHRINK_AVX512_INLINE void scores_rows(const float* q, const float* const* rows, int64_t head_dim, float scale,
                                      float* const* out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t d = 0;
  for (; d + 16 <= head_dim; d += 16) {
    const __m512 qv = _mm512_loadu_ps(q + d);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(rows[r] + d), acc[r]);
  }
  if (d < head_dim) {
    const __mmask16 m = tail_mask(head_dim - d);
    const __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, rows[r] + d), acc[r]);
  }
  for (int r = 0; r < R; ++r) *out[r] = _mm512_reduce_add_ps(acc[r]) * scale;
}

// The panel's two halves are walked in step, two adjacent keys from each: two
// streams, which a core pulls from DRAM faster than one (session 12, with
// accum_avx512 doing the same: llama-500m Q4_K decode at depth 1536 +7% at one
// thread, +16% at two, against one stream).
SHRINK_AVX512 void scores_avx512(const float* q, const float* k, int64_t len, int64_t kv_stride, int64_t head_dim,
                                 float scale, float* scores) {
  const int64_t ahead = std::max<int64_t>(2, kPrefetchBytes / (head_dim * int64_t{sizeof(float)}));
  const int64_t half = len / 4 * 2;  // rows [0, half) and [half, 2 * half), half even
  for (int64_t j = 0; j < half; j += 2) {
    for (int64_t r = j + ahead; r < j + ahead + 2; ++r)
      if (r < half) {
        prefetch_row(k + r * kv_stride, head_dim);
        prefetch_row(k + (half + r) * kv_stride, head_dim);
      }
    const float* rows[4] = {k + j * kv_stride, k + (j + 1) * kv_stride, k + (half + j) * kv_stride,
                            k + (half + j + 1) * kv_stride};
    float* out[4] = {scores + j, scores + j + 1, scores + half + j, scores + half + j + 1};
    scores_rows<4>(q, rows, head_dim, scale, out);
  }
  for (int64_t j = 2 * half; j < len; ++j) {  // at most 3 rows
    const float* rows[1] = {k + j * kv_stride};
    float* out[1] = {scores + j};
    scores_rows<1>(q, rows, head_dim, scale, out);
  }
}

// out[0 .. 16*C) (the last vector masked by `last`) = sum_j p_j v_j[...]: the
// two halves of the rows walked in step (as scores_avx512), each into its own
// accumulators.
template <int C>
SHRINK_AVX512_INLINE void accum_cols(const float* p, const float* v, int64_t len, int64_t kv_stride, __mmask16 last,
                                     float* out) {
  __m512 acc[C], acc2[C];
  for (int c = 0; c < C; ++c) acc[c] = acc2[c] = _mm512_setzero_ps();
  const int64_t ahead = std::max<int64_t>(1, kPrefetchBytes / (64 * C));
  const int64_t half = len / 2;
  for (int64_t j = 0; j < half; ++j) {
    if (j + ahead < half) {
      prefetch_row(v + (j + ahead) * kv_stride, 16 * C);
      prefetch_row(v + (half + j + ahead) * kv_stride, 16 * C);
    }
    const __m512 w = _mm512_set1_ps(p[j]), w2 = _mm512_set1_ps(p[half + j]);
    const float* vj = v + j * kv_stride;
    const float* vj2 = v + (half + j) * kv_stride;
    for (int c = 0; c < C - 1; ++c) {
      acc[c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vj + 16 * c), acc[c]);
      acc2[c] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(vj2 + 16 * c), acc2[c]);
    }
    acc[C - 1] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(last, vj + 16 * (C - 1)), acc[C - 1]);
    acc2[C - 1] = _mm512_fmadd_ps(w2, _mm512_maskz_loadu_ps(last, vj2 + 16 * (C - 1)), acc2[C - 1]);
  }
  if (len % 2) {  // the last row
    const __m512 w = _mm512_set1_ps(p[len - 1]);
    const float* vj = v + (len - 1) * kv_stride;
    for (int c = 0; c < C - 1; ++c) acc[c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vj + 16 * c), acc[c]);
    acc[C - 1] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(last, vj + 16 * (C - 1)), acc[C - 1]);
  }
  for (int c = 0; c < C - 1; ++c) _mm512_storeu_ps(out + 16 * c, _mm512_add_ps(acc[c], acc2[c]));
  _mm512_mask_storeu_ps(out + 16 * (C - 1), last, _mm512_add_ps(acc[C - 1], acc2[C - 1]));
}

SHRINK_AVX512 void accum_avx512(const float* p, const float* v, int64_t len, int64_t kv_stride, int64_t head_dim,
                                float* out) {
  // Up to 128 columns (8 accumulators) per pass over the rows: head_dim <= 128
  // reads each row once, front to back.
  for (int64_t d0 = 0; d0 < head_dim; d0 += 128) {
    const int64_t n = std::min<int64_t>(128, head_dim - d0);
    const int C = int((n + 15) / 16);
    const __mmask16 last = n % 16 ? tail_mask(n % 16) : __mmask16(0xFFFF);
    const float* vd = v + d0;
    float* od = out + d0;
    switch (C) {
      case 1: accum_cols<1>(p, vd, len, kv_stride, last, od); break;
      case 2: accum_cols<2>(p, vd, len, kv_stride, last, od); break;
      case 3: accum_cols<3>(p, vd, len, kv_stride, last, od); break;
      case 4: accum_cols<4>(p, vd, len, kv_stride, last, od); break;
      case 5: accum_cols<5>(p, vd, len, kv_stride, last, od); break;
      case 6: accum_cols<6>(p, vd, len, kv_stride, last, od); break;
      case 7: accum_cols<7>(p, vd, len, kv_stride, last, od); break;
      default: accum_cols<8>(p, vd, len, kv_stride, last, od); break;
    }
  }
}

}  // namespace

extern const Kernels kAvx512;
const Kernels kAvx512{"avx512", scores_avx512, accum_avx512};

}  // namespace shrink::kernels::f32attn
