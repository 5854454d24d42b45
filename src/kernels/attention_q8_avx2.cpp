// AVX2 primitives of the int8-KV-cache attention (compiled with a target
// attribute; only called when the CPU reports AVX2 and FMA). Scores: key codes
// widened to int16 and multiplied with the query's int16 codes by vpmaddwd, 16
// per instruction, summed exactly in int32. Values: codes widened int8 -> int32
// -> f32 eight at a time (8-byte loads) and accumulated in f32. Leftover
// columns (head_dim % 16 for keys, % 8 for values) are done one by one, so no
// row is read past its end.
#include <immintrin.h>

#include <algorithm>

#include "kernels/attention_q8.h"

#define SHRINK_AVX2 __attribute__((target("avx2,fma")))
#define SHRINK_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace shrink::kernels::q8attn {

namespace {

// Software prefetch of the rows kPrefetchBytes ahead (as on AVX-512).
constexpr int64_t kPrefetchBytes = 2048;

SHRINK_AVX2_INLINE void prefetch_row(const int8_t* row, int64_t head_dim) {
  for (int64_t d = 0; d < head_dim; d += 64) _mm_prefetch(reinterpret_cast<const char*>(row + d), _MM_HINT_T0);
}

SHRINK_AVX2_INLINE __m256 widen8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// R rows of scores at once; exact int32 sums (order does not matter).
template <int R>
SHRINK_AVX2_INLINE void scores_rows(const int16_t* e, float dq, const int8_t* k, const float* ks, int64_t kv_stride,
                                    int64_t s_stride, int64_t head_dim, float scale, float* scores) {
  __m256i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
  int64_t d = 0;
  for (; d + 16 <= head_dim; d += 16) {
    const __m256i ev = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e + d));
    for (int r = 0; r < R; ++r) {
      const __m256i kv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + r * kv_stride + d)));
      acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(kv, ev));
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(acc[r]), _mm256_extracti128_si256(acc[r], 1));
    const __m128i s2 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    int32_t s = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0xB1)));
    for (int64_t t = d; t < head_dim; ++t) s += int32_t(e[t]) * k[r * kv_stride + t];
    scores[r] = float(s) * (dq * ks[r * s_stride] * scale);
  }
}

SHRINK_AVX2 void scores_avx2(const int16_t* e, float dq, const int8_t* k, const float* ks, int64_t len,
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

// out[0 .. 8*C) = sum_j w_j v_j[0 .. 8*C).
template <int C>
SHRINK_AVX2_INLINE void accum_cols(const float* p, const int8_t* v, const float* vs, int64_t len, int64_t kv_stride,
                                   int64_t s_stride, float* out) {
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  const int64_t ahead = std::max<int64_t>(1, kPrefetchBytes / (8 * C));
  for (int64_t j = 0; j < len; ++j) {
    const char* pf = reinterpret_cast<const char*>(v + (j + ahead) * kv_stride);
    for (int c = 0; c < C; c += 8) _mm_prefetch(pf + 8 * c, _MM_HINT_T0);
    const __m256 w = _mm256_set1_ps(p[j] * vs[j * s_stride]);
    const int8_t* vj = v + j * kv_stride;
    for (int c = 0; c < C; ++c) acc[c] = _mm256_fmadd_ps(w, widen8(vj + 8 * c), acc[c]);
  }
  for (int c = 0; c < C; ++c) _mm256_storeu_ps(out + 8 * c, acc[c]);
}

SHRINK_AVX2 void accum_avx2(const float* p, const int8_t* v, const float* vs, int64_t len, int64_t kv_stride,
                            int64_t s_stride, int64_t head_dim, float* out) {
  // Whole groups of 8 columns, up to 64 (8 accumulators) per pass over the rows.
  const int64_t full = head_dim / 8 * 8;
  for (int64_t d0 = 0; d0 < full; d0 += 64) {
    const int8_t* vd = v + d0;
    float* od = out + d0;
    switch (std::min<int64_t>(8, (full - d0) / 8)) {
      case 1: accum_cols<1>(p, vd, vs, len, kv_stride, s_stride, od); break;
      case 2: accum_cols<2>(p, vd, vs, len, kv_stride, s_stride, od); break;
      case 3: accum_cols<3>(p, vd, vs, len, kv_stride, s_stride, od); break;
      case 4: accum_cols<4>(p, vd, vs, len, kv_stride, s_stride, od); break;
      case 5: accum_cols<5>(p, vd, vs, len, kv_stride, s_stride, od); break;
      case 6: accum_cols<6>(p, vd, vs, len, kv_stride, s_stride, od); break;
      case 7: accum_cols<7>(p, vd, vs, len, kv_stride, s_stride, od); break;
      default: accum_cols<8>(p, vd, vs, len, kv_stride, s_stride, od); break;
    }
  }
  for (int64_t d = full; d < head_dim; ++d) {
    float s = 0;
    for (int64_t j = 0; j < len; ++j) s += p[j] * vs[j * s_stride] * float(v[j * kv_stride + d]);
    out[d] = s;
  }
}

SHRINK_AVX2 void dequant_avx2(const int8_t* q, const float* s, int64_t rows, int64_t cols, float* x) {
  for (int64_t r = 0; r < rows; ++r) {
    const __m256 d = _mm256_set1_ps(s[r]);
    const int8_t* qr = q + r * cols;
    float* xr = x + r * cols;
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(xr + c, _mm256_mul_ps(d, widen8(qr + c)));
    for (; c < cols; ++c) xr[c] = s[r] * float(qr[c]);
  }
}

}  // namespace

extern const Kernels kAvx2;
const Kernels kAvx2{"avx2", scores_avx2, accum_avx2, dequant_avx2};

}  // namespace shrink::kernels::q8attn
