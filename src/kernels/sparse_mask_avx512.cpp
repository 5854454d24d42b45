// AVX-512 kernel of the bitmask sparse GEMV (kernels/sparse_mask.h): a group
// of 16 columns is one vexpandps of its packed values under its mask (lanes
// of pruned columns read nothing and become 0), one load of its 16 x values
// and one FMA; the value pointer moves on by popcount(mask). That pointer
// advance is a serial chain within a row, so four rows run interleaved (four
// independent chains, one x load shared by the four). A narrow last group
// loads only its columns of x (x may end there).
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever such an intrinsic is inlined (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "kernels/sparse_mask.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,popcnt,fma")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,popcnt,fma"), always_inline)) inline

namespace shrink::kernels {

namespace {

// acc += group g of one row (mask k, values at *v, advanced) times xg.
SHRINK_AVX512_INLINE __m512 step(__m512 acc, __mmask16 k, const float*& v, __m512 xg) {
  acc = _mm512_fmadd_ps(_mm512_maskz_expandloadu_ps(k, v), xg, acc);
  v += _mm_popcnt_u32(k);
  return acc;
}

// x's group g (16 values, or the narrow last group's `tail` lanes).
SHRINK_AVX512_INLINE __m512 x_group(const float* x, int64_t g, int64_t full, __mmask16 tail) {
  return g < full ? _mm512_loadu_ps(x + 16 * g) : _mm512_maskz_loadu_ps(tail, x + 16 * g);
}

}  // namespace

SHRINK_AVX512 void mask_rows_avx512(const MaskMatrix& m, int64_t r0, int64_t r1, const float* x, float* y) {
  const int64_t ng = m.groups(), full = m.cols / 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (m.cols % 16)) - 1);
  const float* values = m.values.data();
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    const uint16_t* mk = m.masks.data() + r * ng;
    const float *v0 = values + m.row_start[r], *v1 = values + m.row_start[r + 1], *v2 = values + m.row_start[r + 2],
                *v3 = values + m.row_start[r + 3];
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t g = 0; g < ng; ++g) {
      const __m512 xg = x_group(x, g, full, tail);
      a0 = step(a0, mk[g], v0, xg);
      a1 = step(a1, mk[ng + g], v1, xg);
      a2 = step(a2, mk[2 * ng + g], v2, xg);
      a3 = step(a3, mk[3 * ng + g], v3, xg);
    }
    y[r - r0] = _mm512_reduce_add_ps(a0), y[r + 1 - r0] = _mm512_reduce_add_ps(a1);
    y[r + 2 - r0] = _mm512_reduce_add_ps(a2), y[r + 3 - r0] = _mm512_reduce_add_ps(a3);
  }
  for (; r < r1; ++r) {
    const uint16_t* mk = m.masks.data() + r * ng;
    const float* v = values + m.row_start[r];
    __m512 acc = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) acc = step(acc, mk[g], v, x_group(x, g, full, tail));
    y[r - r0] = _mm512_reduce_add_ps(acc);
  }
}

// Each group's values expanded to its 16 columns (zeros elsewhere) and stored;
// the narrow last group stores only its columns (the row may end there).
SHRINK_AVX512 void mask_unpack_rows_avx512(const MaskMatrix& m, int64_t r0, int64_t nr, float* out) {
  const int64_t ng = m.groups(), full = m.cols / 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (m.cols % 16)) - 1);
  for (int64_t r = r0; r < r0 + nr; ++r) {
    const uint16_t* mk = m.masks.data() + r * ng;
    const float* v = m.values.data() + m.row_start[r];
    float* o = out + (r - r0) * m.cols;
    for (int64_t g = 0; g < full; ++g) {
      _mm512_storeu_ps(o + 16 * g, _mm512_maskz_expandloadu_ps(mk[g], v));
      v += _mm_popcnt_u32(mk[g]);
    }
    if (full < ng) _mm512_mask_storeu_ps(o + 16 * full, tail, _mm512_maskz_expandloadu_ps(mk[full], v));
  }
}

}  // namespace shrink::kernels
