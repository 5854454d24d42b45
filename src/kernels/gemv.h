// Matrix products of a Linear weight W {rows=out, cols=in} with activations:
//   y[n x out] = x[n x in] * W^T
// n == 1 (decode) streams W once through a SIMD dot-product kernel chosen at
// run time (AVX-512 / AVX2 / scalar); n > 1 (prefill) goes through oneDNN GEMM.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace shrink::kernels {

// y[r] = dot(W[r, :], x) for r in [0, rows). W is dense f32, f16 or bf16.
void gemv(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols);
// gemv() on exactly `threads` threads (contiguous row slabs, one per thread),
// without gemv()'s small-matrix threshold; threads <= 1 runs on the calling
// thread. For benchmarks and for callers that schedule their own threads.
void gemv_threads(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols, int threads);
// Scalar reference of the above (tests compare every SIMD path with it).
void gemv_ref(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols);
// Which implementation gemv() uses on this CPU: "avx512", "avx2" or "scalar".
const char* gemv_isa();

// dst[i] = src[i] widened to f32 for i < n (src f32, f16 or bf16), with the
// same SIMD dispatch as gemv.
void widen_to_f32(DType wtype, const void* src, float* dst, int64_t n);

// y[n x rows] = x[n x cols] * W^T for any n; W dense f32/f16/bf16.
void matmul(DType wtype, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols);

// y[n x rows] = x[n x cols] * W^T with f32 x and W whose rows are ldx / ldw
// apart (column slices of wider matrices); y is dense (leading dimension rows).
void matmul_strided(const float* x, int64_t ldx, const float* W, int64_t ldw, float* y, int64_t n, int64_t rows,
                    int64_t cols);

}  // namespace shrink::kernels
