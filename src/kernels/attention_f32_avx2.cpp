// AVX2 primitives of f32 decode attention (attention_f32.h; compiled with a
// target attribute, only called when the CPU reports AVX2 and FMA). As the
// AVX-512 file, eight floats per vector: scores four keys at a time from the
// panel's two halves; values up to 64 output columns in registers per pass,
// one stream (two would need more than AVX2's 16 registers); head_dim tails by
// masked loads (vmaskmovps does not touch the masked-off elements).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/attention_f32.h"

#define SHRINK_AVX2 __attribute__((target("avx2,fma")))
#define SHRINK_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace shrink::kernels::f32attn {

namespace {

constexpr int64_t kPrefetchBytes = 2048;  // as attention_f32_avx512.cpp

// Lanes i < n set (n in 1..8).
SHRINK_AVX2_INLINE __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

SHRINK_AVX2_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

SHRINK_AVX2_INLINE void prefetch_row(const float* row, int64_t head_dim) {
  for (int64_t d = 0; d < head_dim; d += 16) _mm_prefetch(reinterpret_cast<const char*>(row + d), _MM_HINT_T0);
}

// *out[r] = dot(q, rows[r]) * scale for r < R, one FMA chain per row.
template <int R>
SHRINK_AVX2_INLINE void scores_rows(const float* q, const float* const* rows, int64_t head_dim, float scale,
                                    float* const* out) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= head_dim; d += 8) {
    const __m256 qv = _mm256_loadu_ps(q + d);
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[r] + d), acc[r]);
  }
  if (d < head_dim) {
    const __m256i m = tail_mask(head_dim - d);
    const __m256 qv = _mm256_maskload_ps(q + d, m);
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(rows[r] + d, m), acc[r]);
  }
  for (int r = 0; r < R; ++r) *out[r] = hsum(acc[r]) * scale;
}

// The panel's two halves walked in step, two adjacent keys from each (as scores_avx512).
SHRINK_AVX2 void scores_avx2(const float* q, const float* k, int64_t len, int64_t kv_stride, int64_t head_dim,
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

// out[0 .. 8*C) (the last vector masked by `last`) = sum_j p_j v_j[...].
template <int C>
SHRINK_AVX2_INLINE void accum_cols(const float* p, const float* v, int64_t len, int64_t kv_stride, __m256i last,
                                   float* out) {
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  const int64_t ahead = std::max<int64_t>(1, kPrefetchBytes / (32 * C));
  for (int64_t j = 0; j < len; ++j) {
    if (j + ahead < len) prefetch_row(v + (j + ahead) * kv_stride, 8 * C);
    const __m256 w = _mm256_set1_ps(p[j]);
    const float* vj = v + j * kv_stride;
    for (int c = 0; c < C - 1; ++c) acc[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * c), acc[c]);
    acc[C - 1] = _mm256_fmadd_ps(w, _mm256_maskload_ps(vj + 8 * (C - 1), last), acc[C - 1]);
  }
  for (int c = 0; c < C - 1; ++c) _mm256_storeu_ps(out + 8 * c, acc[c]);
  _mm256_maskstore_ps(out + 8 * (C - 1), last, acc[C - 1]);
}

SHRINK_AVX2 void accum_avx2(const float* p, const float* v, int64_t len, int64_t kv_stride, int64_t head_dim,
                            float* out) {
  // Up to 64 columns (8 accumulators) per pass over the rows.
  for (int64_t d0 = 0; d0 < head_dim; d0 += 64) {
    const int64_t n = std::min<int64_t>(64, head_dim - d0);
    const int C = int((n + 7) / 8);
    const __m256i last = tail_mask(n - 8 * (C - 1));
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

extern const Kernels kAvx2;
const Kernels kAvx2{"avx2", scores_avx2, accum_avx2};

}  // namespace shrink::kernels::f32attn
