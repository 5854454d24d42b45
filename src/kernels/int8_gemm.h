// W8A8 int8 matrix products: int8 weights with one scale per output channel
// times int8 activations with one scale per token (dynamic, amax/127 of each
// row of x) or one static scale per tensor (from calibration), products
// summed exactly in int32, then
//   y[i][j] = fma(float(acc[i][j]), x_scale[i] * w_scale[j], bias[j])
// (bias 0 when absent). That epilogue is written with an explicit fused
// multiply-add in every path, so all paths give bit-identical y.
//
// n == 1 (decode) streams W once through our own GEMV (AVX-512 VNNI: vpdpbusd
// on x + 128 minus 128 * row_sum; AVX2: int8 -> int16 widening + vpmaddwd;
// scalar reference), rows split over OpenMP threads as kernels::gemv does.
// n > 1 (prefill) runs small n through the same row kernels, each L2-sized
// panel of W reused for all n tokens, and larger n through a oneDNN int8
// matmul (s8 x s8 -> s32; AMX on CPUs that have it), then the epilogue.
//
// Quantization rounds half to even (IEEE default rounding mode) and clamps to
// [-127, 127] in float before rounding; NaN codes as 127 (the SIMD min/max
// semantics, reproduced by the scalar references). SIMD and scalar
// quantizers write identical bytes and scales.
#pragma once
#include <cstdint>

namespace shrink::kernels {

// A W8A8 weight {rows = out, cols = in}, row-major. row_sum[j] = sum_k q[j][k]
// (int8_row_sums); the VNNI path needs it to undo the +128 activation offset.
// Any int8 codes are accepted (including -128); cols <= kInt8MaxCols keeps
// every int32 sum exact.
struct Int8Rows {
  const int8_t* q = nullptr;
  const float* scale = nullptr;      // [rows]
  const int32_t* row_sum = nullptr;  // [rows]
  int64_t rows = 0, cols = 0;
};
inline constexpr int64_t kInt8MaxCols = (int64_t{1} << 17) - 1;

// Per-token (per-row) symmetric quantization of x [n x k]:
//   scales[i] = amax_i / 127, q = round(x * (127 / amax_i)); a row with
//   amax_i < 1e-30 (all zero, or too small for a finite 127 / amax_i) gets
//   scale 0 and codes 0. NaN entries are ignored by amax.
void quantize_rows_s8(const float* x, int64_t n, int64_t k, int8_t* q, float* scales);
// One static scale for every row: q = clamp(round(x * (1 / scale)), -127, 127)
// (saturates); scales[i] = scale for each row (nullptr: not written). Throws
// unless scale > 0 with 1 / scale finite.
void quantize_rows_s8_static(const float* x, int64_t n, int64_t k, float scale, int8_t* q, float* scales);
// Scalar references of both (tests).
void quantize_rows_s8_ref(const float* x, int64_t n, int64_t k, int8_t* q, float* scales);
void quantize_rows_s8_static_ref(const float* x, int64_t n, int64_t k, float scale, int8_t* q, float* scales);

// row_sum[j] = sum of row j of q [rows x cols].
void int8_row_sums(const int8_t* q, int64_t rows, int64_t cols, int32_t* row_sum);
// Per-output-channel weight quantization of w [rows x cols] f32: quantize_rows_s8
// plus the row sums, i.e. everything an Int8Rows points to.
void quantize_weight_s8(const float* w, int64_t rows, int64_t cols, int8_t* q, float* scale, int32_t* row_sum);

// y[n x w.rows] = dequant(xq [n x w.cols] * W^T) (+ bias [w.rows], may be
// nullptr). x_scales has n entries. Dispatches by n and CPU (see above).
void int8_matmul(const Int8Rows& w, const int8_t* xq, const float* x_scales, const float* bias, float* y, int64_t n);
// Scalar reference (int32 dots, the same epilogue).
void int8_matmul_ref(const Int8Rows& w, const int8_t* xq, const float* x_scales, const float* bias, float* y,
                     int64_t n);
// The int32 sums acc[n x w.rows] = xq * W^T by int8_matmul's own path (tests
// check them against int8_matmul_s32_ref; acc must not alias xq). Exact, except
// that oneDNN's (n >= 8) can come through f32 on CPUs without AMX (seen on AMD
// Zen 5): then exact after float(acc), which is all the epilogue uses.
void int8_matmul_s32(const Int8Rows& w, const int8_t* xq, int32_t* acc, int64_t n);
void int8_matmul_s32_ref(const Int8Rows& w, const int8_t* xq, int32_t* acc, int64_t n);

// Quantize x [n x w.cols] (per token when act_scale == 0, else with the static
// act_scale), then int8_matmul: what a W8A8 Linear's forward calls.
void int8_linear(const Int8Rows& w, const float* x, float act_scale, const float* bias, float* y, int64_t n);

// The n == 1 product on exactly `threads` threads (contiguous row slabs),
// without int8_matmul's small-matrix threshold (benchmarks).
void int8_gemv_threads(const Int8Rows& w, const int8_t* xq, float x_scale, const float* bias, float* y, int threads);
// n > 1 through the row kernels (W panels reused across tokens) or oneDNN,
// callable directly (benchmarks, tests); int8_matmul picks by n.
void int8_matmul_rows(const Int8Rows& w, const int8_t* xq, const float* x_scales, const float* bias, float* y,
                      int64_t n);
void int8_matmul_onednn(const Int8Rows& w, const int8_t* xq, const float* x_scales, const float* bias, float* y,
                        int64_t n);
// The n at and above which int8_matmul uses oneDNN.
int64_t int8_onednn_min_n();

// Which row kernel int8_matmul uses on this CPU: "avx512vnni", "avx2" or "scalar".
const char* int8_isa();

// Per-ISA pieces behind the dispatch (tests call them directly; only call a
// path when the hardware has it: int8_impl::cpu_avx512 / cpu_avx2).
namespace int8_impl {
// acc[r] = dot(W row r, x) exactly, r < rows, single-threaded (W row-major,
// row_sum as in Int8Rows; only the VNNI path reads it).
using DotRowsFn = void (*)(const int8_t* W, const int32_t* row_sum, const int8_t* x, int32_t* acc, int64_t rows,
                           int64_t cols);
void dot_rows_avx512(const int8_t* W, const int32_t* row_sum, const int8_t* x, int32_t* acc, int64_t rows,
                     int64_t cols);
void dot_rows_avx2(const int8_t* W, const int32_t* row_sum, const int8_t* x, int32_t* acc, int64_t rows,
                   int64_t cols);
void dot_rows_ref(const int8_t* W, const int32_t* row_sum, const int8_t* x, int32_t* acc, int64_t rows,
                  int64_t cols);
// y[i * ldy + j] = fma(float(acc[i * ldacc + j]), x_scales[i] * w_scale[j], bias ? bias[j] : 0)
// for i < n, j < cols. acc may be the same memory as y (same leading dimension).
using ScaleFn = void (*)(const int32_t* acc, int64_t ldacc, const float* x_scales, const float* w_scale,
                         const float* bias, float* y, int64_t ldy, int64_t n, int64_t cols);
void scale_avx512(const int32_t* acc, int64_t ldacc, const float* x_scales, const float* w_scale, const float* bias,
                  float* y, int64_t ldy, int64_t n, int64_t cols);
void scale_avx2(const int32_t* acc, int64_t ldacc, const float* x_scales, const float* w_scale, const float* bias,
                float* y, int64_t ldy, int64_t n, int64_t cols);
void scale_ref(const int32_t* acc, int64_t ldacc, const float* x_scales, const float* w_scale, const float* bias,
               float* y, int64_t ldy, int64_t n, int64_t cols);
// Row quantizers: static_scale == 0 -> per token, else static (scales may be nullptr then).
using QuantFn = void (*)(const float* x, int64_t n, int64_t k, float static_scale, int8_t* q, float* scales);
void quantize_avx512(const float* x, int64_t n, int64_t k, float static_scale, int8_t* q, float* scales);
void quantize_avx2(const float* x, int64_t n, int64_t k, float static_scale, int8_t* q, float* scales);
void quantize_ref(const float* x, int64_t n, int64_t k, float static_scale, int8_t* q, float* scales);
// The hardware (ignoring SHRINK_ISA) can run the avx512 (F/BW/VL/VNNI/FMA) / avx2 (AVX2/FMA) paths.
bool cpu_avx512();
bool cpu_avx2();
}  // namespace int8_impl

}  // namespace shrink::kernels
