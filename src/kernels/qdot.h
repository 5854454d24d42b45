// Dot products of ggml block-quantized weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// Q2_K..Q6_K; layouts in quant_blocks.h / quant_kblocks.h) with activations
// quantized on the fly to 8 bits, and the GEMV/GEMM a block-quantized Linear
// calls. Semantics are ggml's vec_dot_<w>_<act> (ggml/src/ggml-cpu/quants.c,
// ggml-org/llama.cpp): the weights' integer codes are multiplied with the
// activations' int8 codes exactly in integers, block by block, and only the
// per-block scales are applied in f32. The code here is our own: a scalar
// reference (qdot.cpp) and AVX-512 VNNI / AVX2 paths chosen at run time
// (qdot_avx512.cpp, qdot_avx2.cpp), each tested against the reference.
//
// Activation formats (ggml's, bit-exact):
//   Q8_0 { f16 d; i8 qs[32]; }                 for Q4_0, Q5_0, Q8_0 weights
//   Q8_1 { f16 d; f16 s = d*sum(qs); i8 qs[32]; } for Q4_1, Q5_1 weights
//   Q8_K { f32 d; i8 qs[256]; i16 bsums[16]; } for all K-quant weights
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_kblocks.h"

namespace shrink::kernels {

struct BlockQ8_1 {
  uint16_t d, s;  // f16 scale, f16 d * sum(qs)
  int8_t qs[kQK];
};
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sum of each run of 16 qs
};
static_assert(sizeof(BlockQ8_1) == 36 && sizeof(BlockQ8_K) == 292);

// The activation format a weight type is multiplied with.
enum class QAct : uint8_t { Q8_0, Q8_1, Q8_K };
QAct qdot_act_type(DType wtype);  // throws for types without a quantized dot
bool qdot_supported(DType wtype);  // the ten block types above
// Bytes of activation blocks for n values (n a multiple of the weight's block size).
int64_t qdot_act_bytes(DType wtype, int64_t n);

// Quantizes n floats to wtype's activation format (as ggml's x86 CPU backend
// does: Q8_0/Q8_1 scale amax to 127 and round half to even; Q8_K maps the
// signed largest-magnitude value to -127). The SIMD and scalar paths write
// identical bytes. n must be a multiple of wtype's block size.
void quantize_act(DType wtype, const float* x, void* act, int64_t n);
void quantize_act_ref(DType wtype, const float* x, void* act, int64_t n);
// The values activation blocks stand for (qs * d), n of them: with
// quantize_act, the rounding a wtype product applies to its input, which
// quantization-aware training replays (train/qat.h, --act-quant runtime).
void dequantize_act(DType wtype, const void* act, float* out, int64_t n);

// dot(w, a) over n values: w is n/block_elems blocks of wtype, a the matching
// activation blocks. vec_dot dispatches like qgemv; vec_dot_ref is the scalar reference.
float vec_dot(DType wtype, const void* w, const void* act, int64_t n);
float vec_dot_ref(DType wtype, const void* w, const void* act, int64_t n);

// y[r] = dot(W[r,:], act) for r < rows, single-threaded, with pre-quantized
// activations (W is `rows` rows of cols/block_elems blocks).
void qdot_rows(DType wtype, const void* W, const void* act, float* y, int64_t rows, int64_t cols);

// y[r] = dot(W[r,:], x) for r < rows; W is `rows` rows of cols/block_elems blocks of type wtype.
// x is quantized once to the matching activation type, then rows are split across OpenMP threads
// (contiguous slabs; small matrices stay on the calling thread). Results do not depend on the
// thread count.
void qgemv(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols);
// qgemv on exactly `threads` threads, without the small-matrix threshold (benchmarks).
void qgemv_threads(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols, int threads);
// One input against several matrices of one type and width (decode's q/k/v,
// gate/up): y_i = W_i x for each part, the activation quantized once and all
// parts' rows split over the threads in one pass, so the team forks and joins
// once rather than once per matrix (at 2 threads, 7-14% faster on three
// 1536 x 1536 Q4_0 matrices streamed from DRAM). Each row is computed as
// qgemv computes it.
struct QGemvPart {
  const void* W;
  float* y;
  int64_t rows;
};
void qgemv_parts(DType wtype, const QGemvPart* parts, int n_parts, const float* x, int64_t cols);
// Scalar reference of qgemv (quantize_act_ref, then vec_dot_ref per row).
void qgemv_ref(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols);
// y[n x rows] = x[n x cols] * W^T for any n (prefill). Small n: quantized dots, each
// L2-sized panel of W reused for all n inputs (same results as qgemv per input row);
// large n: panels of W dequantized to f32 and multiplied with oneDNN sgemm.
void qmatmul(DType wtype, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols);
// The n at and above which qmatmul dequantizes instead of using quantized dots.
int64_t qmatmul_dequant_min_n(DType wtype);
// qmatmul's two strategies, callable directly (benchmarks, tests).
void qmatmul_quantized(DType wtype, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols);
void qmatmul_dequant(DType wtype, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols);
// Which implementation qgemv uses on this CPU: "avx512vnni", "avx2" or "scalar".
const char* qdot_isa();
// Whether `isa` ("avx512vnni", "avx2") has a SIMD kernel for wtype (others fall back to scalar).
bool qdot_has_simd(const char* isa, DType wtype);

// Per-ISA entry points behind the dispatch (tests call them directly). Each
// handles every supported type, falling back to the scalar reference where
// it has no kernel of its own; only call them when the CPU has the ISA.
namespace qdot_impl {
void rows_avx512(DType wtype, const void* W, const void* act, float* y, int64_t rows, int64_t cols);
void rows_avx2(DType wtype, const void* W, const void* act, float* y, int64_t rows, int64_t cols);
// rows_avx512 with the Q4_0 kernel this CPU does not decode with (two exist:
// qdot_avx512.cpp), so tests cover both on any CPU; other types as rows_avx512.
void rows_avx512_other_q4_0(DType wtype, const void* W, const void* act, float* y, int64_t rows, int64_t cols);
void rows_ref(DType wtype, const void* W, const void* act, float* y, int64_t rows, int64_t cols);
void quantize_act_avx512(DType wtype, const float* x, void* act, int64_t n);
void quantize_act_avx2(DType wtype, const float* x, void* act, int64_t n);
bool has_avx512(DType wtype);
bool has_avx2(DType wtype);
// The hardware (ignoring SHRINK_ISA) can run the avx512 / avx2 paths.
bool cpu_avx512();
bool cpu_avx2();
}  // namespace qdot_impl

}  // namespace shrink::kernels
