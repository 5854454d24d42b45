// ggml block-quantized formats, bit-exact with ggml's layouts (ggml-common.h):
//   block_q8_0 { f16 d; int8 qs[32]; }          x = d * qs[i]
//   block_q4_0 { f16 d; uint8 qs[16]; }         x[i] = d * ((qs[i] & 15) - 8), x[i+16] = d * ((qs[i] >> 4) - 8)
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
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);

void quantize_q8_0(const float* x, void* blocks, int64_t n);
void dequantize_q8_0(const void* blocks, float* x, int64_t n);
void quantize_q4_0(const float* x, void* blocks, int64_t n);
void dequantize_q4_0(const void* blocks, float* x, int64_t n);

}  // namespace shrink::kernels
