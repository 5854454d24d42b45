// AVX-512 row kernels for gemv (compiled with a target attribute; only called
// when the CPU reports AVX-512F/BW/VL).
#include <immintrin.h>

#include "core/error.h"
#include "kernels/gemv.h"
#include "kernels/gemv_simd.h"

namespace shrink::kernels {

// Placeholder until the SIMD path lands: the scalar reference.
void gemv_rows_avx512(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  gemv_ref(wtype, W, x, y, rows, cols);
}

}  // namespace shrink::kernels
