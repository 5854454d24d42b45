// ggml block-quantized formats, bit-exact with ggml's layouts (ggml-common.h,
// dequantize_row_* in ggml-quants.c of ggml-org/llama.cpp). Blocks of 32 values:
//   block_q8_0 { f16 d; int8 qs[32]; }               x[i] = d * qs[i]
//   block_q4_0 { f16 d; uint8 qs[16]; }              x[i] = d * (q[i] - 8)
//   block_q4_1 { f16 d, m; uint8 qs[16]; }           x[i] = d * q[i] + m
//   block_q5_0 { f16 d; uint8 qh[4]; uint8 qs[16]; } x[i] = d * (q[i] - 16)
//   block_q5_1 { f16 d, m; uint8 qh[4]; uint8 qs[16]; } x[i] = d * q[i] + m
//   block_iq4_nl { f16 d; uint8 qs[16]; }            x[i] = d * kIQ4NLValues[q[i]]
// The 4-bit part of q[i] is the low nibble of qs[i] for i < 16 and the high
// nibble of qs[i - 16] otherwise; Q5's fifth bit of q[i] is bit i of qh read
// as a little-endian uint32. K-quants (256-value super-blocks) are in quant_kblocks.h,
// the per-element (scale, offset, code) view GPTQ needs in quant_grid.h.
//
// Quantizers are bit-exact with llama.cpp's ggml_quantize_chunk (checked against
// its output by tests/quant_blocks_test.cpp): without importance they are
// quantize_row_*_ref and x may hold several rows; with importance (per-column
// weights, llama.cpp's imatrix) they are quantize_row_*_impl, whose statistics
// span the row, so x must be exactly ONE row of n values and importance has n
// entries. Q8_0 ignores importance, as ggml does. n must be a multiple of the
// block size (throws shrink::Error otherwise).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace shrink::kernels {

constexpr int kQK = 32;
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
              sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockIQ4_NL) == 18);
// IQ4_NL's 16 non-uniform levels (ggml's kvalues_iq4nl), ascending.
extern const int8_t kIQ4NLValues[16];

void quantize_q8_0(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void dequantize_q8_0(const void* blocks, float* x, int64_t n);
void quantize_q4_0(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void dequantize_q4_0(const void* blocks, float* x, int64_t n);
// Without importance, round-to-nearest like ggml's quantize_row_*_ref: Q4_0/Q5_0
// map the largest-magnitude value to -8/-16, Q4_1/Q5_1 map [min, max] of each
// block onto 0..15 / 0..31. With importance, weighted least-squares scale searches.
void quantize_q4_1(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void dequantize_q4_1(const void* blocks, float* x, int64_t n);
void quantize_q5_0(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void dequantize_q5_0(const void* blocks, float* x, int64_t n);
void quantize_q5_1(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void dequantize_q5_1(const void* blocks, float* x, int64_t n);
// IQ4_NL (ggml type 20) always searches its scale (ggml has no plain-rounding
// path): x^2 weights without importance.
void quantize_iq4_nl(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void dequantize_iq4_nl(const void* blocks, float* x, int64_t n);

// Dispatch over every block type shrink writes: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// Q2_K..Q6_K, IQ4_NL.
bool has_block_quantizer(DType t);
// One row of n values; importance (nullable) has n entries. = ggml_quantize_chunk
// on one row.
void quantize_row(DType t, const float* x, void* blocks, int64_t n, const float* importance = nullptr);
// nrows rows of n_per_row values (row r's blocks at r * dtype_bytes(t, n_per_row));
// importance (nullable) has n_per_row entries, shared by all rows: exactly
// ggml_quantize_chunk(t, x, blocks, 0, nrows, n_per_row, importance). Rows run in
// parallel (OpenMP); the bytes do not depend on the thread count.
void quantize_rows(DType t, const float* x, void* blocks, int64_t nrows, int64_t n_per_row,
                   const float* importance = nullptr);
void dequantize_row(DType t, const void* blocks, float* x, int64_t n);

}  // namespace shrink::kernels
