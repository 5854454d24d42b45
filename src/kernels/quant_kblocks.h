// ggml "K-quants": super-blocks of 256 values (QK_K) whose sub-block scales are
// themselves quantized and packed in the block. Layouts are ggml's block_q*_K
// (ggml/src/ggml-common.h) read as dequantize_row_q*_K does (ggml/src/ggml-quants.c,
// ggml-org/llama.cpp); the code here is our own. Element e (0..255) of a block:
//
//   Q2_K { u8 scales[16]; u8 qs[64]; f16 d, dmin; }                       84 bytes
//     q = 2-bit "crumb" of e (below); sub-block s = e/16 has scale byte
//     scales[s] = sc | m << 4;  x = d*sc*q - dmin*m
//   Q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }              110 bytes
//     q = crumb(e) - (bit e/32 of hmask[e%32] ? 0 : 4), in -4..3;
//     16 6-bit scales (packing: q3_k_scale); x = d*(scale[e/16] - 32)*q
//   Q4_K { f16 d, dmin; u8 scales[12]; u8 qs[128]; }                     144 bytes
//     q = nibble of qs[32*(e/64) + e%32]: low for e%64 < 32, high otherwise;
//     8 sub-blocks of 32 with 6-bit (sc, m) (packing: k4_scale_min);
//     x = d*sc[e/32]*q - dmin*m[e/32]
//   Q5_K { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }          176 bytes
//     as Q4_K, plus 16 * (bit e/32 of qh[e%32])
//   Q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }                210 bytes
//     per 128-half h = e/128, group g = (e%128)/32, lane l = e%32:
//     low 4 bits = nibble (g/2 ? high : low) of ql[64h + 32*(g%2) + l],
//     high 2 bits = bits 2g..2g+1 of qh[32h + l]; x = d*scales[e/16]*(q - 32)
//
// crumb(e) for Q2_K/Q3_K: bits 2g..2g+1 of qs[32h + l] (h, g, l as for Q6_K),
// so one byte carries lanes l of the four 32-value groups of a 128-half.
// Dequantizers are in quant_kblocks.cpp, quantizers in quant_kblocks_quantize.cpp.
#pragma once
#include <cstdint>

namespace shrink::kernels {

constexpr int kQK_K = 256;

struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Q4_K/Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
// Bytes 0..3 hold scales 0..3 and bytes 4..7 mins 0..3 in their low 6 bits; bytes
// 8..11 hold the low nibbles of scales 4..7 (low half) and mins 4..7 (high half),
// whose top 2 bits sit in bits 6..7 of bytes 0..3 (scales) and 4..7 (mins).
void k4_scale_min(int j, const uint8_t* scales, int* sc, int* m);
// Q3_K: the 6-bit scale j (0..15), before subtracting 32. Low nibbles: bytes 0..7
// (low half for j < 8, high half of byte j-8 for j >= 8); the top 2 bits of scale j
// are bits 2*(j/4)..+1 of byte 8 + j%4.
int q3_k_scale(int j, const uint8_t* scales);

// Quantizers, bit-exact with ggml_quantize_chunk (llama.cpp's ggml-quants.c):
// without importance, quantize_row_q*_K_ref (x may hold any number of rows);
// with importance, quantize_row_q*_K_impl: x is ONE row of n values and
// importance its n per-column weights (llama.cpp's imatrix for that tensor).
// n must be a multiple of 256 (throws shrink::Error otherwise).
void quantize_q2_k(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void quantize_q3_k(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void quantize_q4_k(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void quantize_q5_k(const float* x, void* blocks, int64_t n, const float* importance = nullptr);
void quantize_q6_k(const float* x, void* blocks, int64_t n, const float* importance = nullptr);

// n must be a multiple of 256.
void dequantize_q2_k(const void* blocks, float* x, int64_t n);
void dequantize_q3_k(const void* blocks, float* x, int64_t n);
void dequantize_q4_k(const void* blocks, float* x, int64_t n);
void dequantize_q5_k(const void* blocks, float* x, int64_t n);
void dequantize_q6_k(const void* blocks, float* x, int64_t n);

}  // namespace shrink::kernels
