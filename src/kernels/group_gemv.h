// Products with group-quantized weights straight from their packed codes
// (the layout of model/group_weight.h and compressed-tensors' pack-quantized
// format): rows of int32 words, 32/bits codes per word, code i of a word in
// bits [bits*i, bits*(i+1)); value(r, c) = scale[r,g] * (level(code) - zero[r,g])
// with g = c / group_len.
//
// The decode kernels never widen W to a matrix. Two kinds:
//  - q8 (integer codes of 2, 4 or 8 bits, the default): x is rounded to int8
//    per block of 16 packed words (64..256 columns, scale max|x|/127, as
//    llama.cpp's Q8 activations) and codes are multiplied in integers
//    (AVX-512 VNNI vpdpbusd; AVX2 vpmaddubsw), then scaled per word and group:
//    y_r = sum_b dx_b sum_{w in b} s_rw (sum q xq) - sum_g s_rg z_rg sum_{c in g} dx xq.
//  - f32 (view.exact, 3/5/6/7 bits, codebooks): x stays f32, described next.
// The f32 kernel computes per row
//   y_r = sum_g s_rg * (sum_{c in g} level(q_c) x_c)  -  sum_g s_rg z_rg xsum_g
// where xsum_g (the sum of x over group g) is computed once per x. The SIMD
// paths put one packed word in each lane (16 lanes AVX-512, 8 AVX2): shifting
// a vector of words by bits*k yields code k of every word, whose columns
// (w*per_word + k) are not adjacent; x is rearranged once per call into that
// order ("lane order") so the inner loop is shift, mask, convert, FMA, with no
// shuffles. A lane's word lies in one group when group_len is a multiple of
// 32/bits (or the row is one group), so scales apply per lane after the word's
// codes are summed. Where words straddle two groups (int3 = 10 codes per word
// with g64), each lane's codes are summed apart on either side of its group
// boundary (x masked by code position) and each sum takes its group's scale;
// groups shorter than two words (a word across three groups) take the scalar
// path. Activations stay f32: the result is the f32 product with the
// dequantized weights up to summation order (no activation rounding).
//
// Large n: W is dequantized in L2-sized row panels (in lane order, SIMD) and
// multiplied with the lane-ordered x by oneDNN sgemm; group_matmul picks.
#pragma once
#include <cstdint>

namespace shrink::kernels {

struct GroupQuantView {
  const uint32_t* packed = nullptr;  // rows x words_per_row, words_per_row = ceil(cols / (32 / bits))
  const float* scale = nullptr;      // rows x n_groups; per tensor: 1 value for all rows
  const float* zero = nullptr;       // like scale (level units); null = 0
  const float* levels = nullptr;     // 2^bits code values (NF4, FP4, FP8 codebooks); null: level(q) = q
  int bits = 4;                      // 2..8
  int64_t rows = 0, cols = 0;
  int64_t group_len = 0;             // columns per group (cols: one group per row)
  bool per_tensor = false;           // one scale/zero for the whole matrix
  bool exact = false;                // f32 activations even where a q8 kernel exists

  int64_t per_word() const { return 32 / bits; }
  int64_t words_per_row() const { return (cols + per_word() - 1) / per_word(); }
  int64_t n_groups() const { return (cols + group_len - 1) / group_len; }
  int64_t param_stride() const { return per_tensor ? 0 : n_groups(); }  // scale/zero row stride
};

// Checks the view's fields (throws naming the problem).
void check_group_view(const GroupQuantView& w);

// y[r] = dot(W[r, :], x); rows split across OpenMP threads (small matrices on
// the calling thread). Results do not depend on the thread count.
void group_gemv(const GroupQuantView& w, const float* x, float* y);
// y[n x rows] = x[n x cols] * W^T. Small n: the packed-code kernel on L2-sized
// row panels reused for every input; n >= group_matmul_dequant_min_n(): panels
// dequantized and multiplied by oneDNN.
void group_matmul(const GroupQuantView& w, const float* x, float* y, int64_t n);
int64_t group_matmul_dequant_min_n(const GroupQuantView& w);
// Both strategies, callable directly (tests, benchmarks).
void group_matmul_codes(const GroupQuantView& w, const float* x, float* y, int64_t n);
void group_matmul_dequant(const GroupQuantView& w, const float* x, float* y, int64_t n);
// group_gemv on exactly `threads` threads, without the small-matrix threshold (benchmarks).
void group_gemv_threads(const GroupQuantView& w, const float* x, float* y, int threads);
// Scalar reference: dequantizes each value and accumulates in double.
void group_matmul_ref(const GroupQuantView& w, const float* x, float* y, int64_t n);
// Row r of W as f32 values (natural column order).
void group_dequantize_row(const GroupQuantView& w, int64_t r, float* out);

// Tests: one ISA ("avx512", "avx2", "scalar") single-threaded, the q8 or f32
// code kernel, or (dequant) the lane-order dequantization followed by a
// double dot product instead of sgemm. False, doing nothing, when this CPU
// cannot run it or the view has no such kernel.
enum class GroupKernel { F32, Q8, Dequant };
bool group_matmul_with(const char* isa, GroupKernel k, const GroupQuantView& w, const float* x, float* y, int64_t n);
// Whether the view's decode uses int8 activations (q8 kernels).
bool group_uses_q8(const GroupQuantView& w);
// x [w.cols] as group_gemv's decode sees it: rounded to int8 per q8 block and
// dequantized when group_uses_q8(w), else unchanged (quantization-aware
// training replays it: train/qat.h, --act-quant runtime).
void group_round_act(const GroupQuantView& w, const float* x, float* out);

// The path group_gemv takes for this view on this CPU: "avx512vnni q8",
// "avx2 q8", "scalar q8", "avx512", "avx2" or "scalar".
const char* group_gemv_path(const GroupQuantView& w);

}  // namespace shrink::kernels
