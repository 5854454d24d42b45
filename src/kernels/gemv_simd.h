// Per-ISA row kernels behind kernels::gemv (internal to kernels/). Each
// computes y[r] = dot(W[r,:], x) for a small run of rows, single-threaded.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace shrink::kernels {
void gemv_rows_avx512(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols);
void gemv_rows_avx2(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols);
}  // namespace shrink::kernels
