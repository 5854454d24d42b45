// ggml block-quantized formats, bit-exact with ggml's layouts (ggml-common.h,
// dequantize_row_* in ggml-quants.c of ggml-org/llama.cpp). Blocks of 32 values:
//   block_q8_0 { f16 d; int8 qs[32]; }               x[i] = d * qs[i]
//   block_q4_0 { f16 d; uint8 qs[16]; }              x[i] = d * (q[i] - 8)
//   block_q4_1 { f16 d, m; uint8 qs[16]; }           x[i] = d * q[i] + m
//   block_q5_0 { f16 d; uint8 qh[4]; uint8 qs[16]; } x[i] = d * (q[i] - 16)
//   block_q5_1 { f16 d, m; uint8 qh[4]; uint8 qs[16]; } x[i] = d * q[i] + m
// The 4-bit part of q[i] is the low nibble of qs[i] for i < 16 and the high
// nibble of qs[i - 16] otherwise; Q5's fifth bit of q[i] is bit i of qh read
// as a little-endian uint32. K-quants (256-value super-blocks) are in quant_kblocks.h.
// Scalar reference implementations; n must be a multiple of 32.
#pragma once
#include <cstdint>

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
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
              sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);

void quantize_q8_0(const float* x, void* blocks, int64_t n);
void dequantize_q8_0(const void* blocks, float* x, int64_t n);
void quantize_q4_0(const float* x, void* blocks, int64_t n);
void dequantize_q4_0(const void* blocks, float* x, int64_t n);
// Round-to-nearest like ggml's quantize_row_*_ref: Q4_1/Q5_1 map [min, max] of
// each block onto 0..15 / 0..31; Q5_0 maps the largest-magnitude value to -16.
void quantize_q4_1(const float* x, void* blocks, int64_t n);
void dequantize_q4_1(const void* blocks, float* x, int64_t n);
void quantize_q5_0(const float* x, void* blocks, int64_t n);
void dequantize_q5_0(const void* blocks, float* x, int64_t n);
void quantize_q5_1(const float* x, void* blocks, int64_t n);
void dequantize_q5_1(const void* blocks, float* x, int64_t n);

}  // namespace shrink::kernels
