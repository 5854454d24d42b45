// AVX-512 kernel of the bitmask sparse GEMV (kernels/sparse_mask.h): a group
// of 16 columns is one vexpandps of its packed values under its mask (lanes
// of pruned columns read nothing and become 0), one load of its 16 x values
// and one FMA; the value pointer moves on by popcount(mask). A narrow last
// group loads only its columns of x (x may end there). Two accumulators so
// that consecutive groups' FMAs overlap.
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever such an intrinsic is inlined (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "kernels/sparse_mask.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,popcnt,fma")))

namespace shrink::kernels {

SHRINK_AVX512 void mask_rows_avx512(const MaskMatrix& m, int64_t r0, int64_t r1, const float* x, float* y) {
  const int64_t ng = m.groups(), full = m.cols / 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (m.cols % 16)) - 1);
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* mk = m.masks.data() + r * ng;
    const float* v = m.values.data() + m.row_start[r];
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t g = 0;
    for (; g + 1 < full; g += 2) {
      const __mmask16 k0 = mk[g], k1 = mk[g + 1];
      acc0 = _mm512_fmadd_ps(_mm512_maskz_expandloadu_ps(k0, v), _mm512_loadu_ps(x + 16 * g), acc0);
      v += _mm_popcnt_u32(k0);
      acc1 = _mm512_fmadd_ps(_mm512_maskz_expandloadu_ps(k1, v), _mm512_loadu_ps(x + 16 * g + 16), acc1);
      v += _mm_popcnt_u32(k1);
    }
    if (g < full) {
      const __mmask16 k = mk[g];
      acc0 = _mm512_fmadd_ps(_mm512_maskz_expandloadu_ps(k, v), _mm512_loadu_ps(x + 16 * g), acc0);
      v += _mm_popcnt_u32(k);
      ++g;
    }
    if (g < ng) {  // the narrow last group: its mask bits past cols are 0
      const __mmask16 k = mk[g];
      acc0 = _mm512_fmadd_ps(_mm512_maskz_expandloadu_ps(k, v), _mm512_maskz_loadu_ps(tail, x + 16 * g), acc0);
    }
    y[r - r0] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  }
}

}  // namespace shrink::kernels
