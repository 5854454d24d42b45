#include "kernels/quant_kblocks.h"

#include "core/dtype.h"
#include "core/error.h"

namespace shrink::kernels {

namespace {

// Byte and shift of element e's 2-bit code in a 64-byte qs (Q2_K, Q3_K): each
// 128-value half uses 32 bytes, one per lane l = e%32, and group g = (e%128)/32
// takes bits 2g..2g+1.
inline int crumb(const uint8_t* qs, int e) {
  return (qs[32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
}

// Element e's 4-bit code in a 128-byte qs (Q4_K, Q5_K): each 64-value chunk uses
// 32 bytes, its first 32 values in the low nibbles and the next 32 in the high ones.
inline int nibble(const uint8_t* qs, int e) {
  return (qs[32 * (e >> 6) + (e & 31)] >> (4 * ((e >> 5) & 1))) & 15;
}

// Bit e/32 of bytes[e%32] (Q3_K's hmask, Q5_K's qh): lane l's byte holds one bit
// for each of the 8 groups of 32.
inline int lane_bit(const uint8_t* bytes, int e) { return (bytes[e & 31] >> (e >> 5)) & 1; }

void block_q2_k(const BlockQ2_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < kQK_K / 16; ++s) {
    const float dl = d * (b.scales[s] & 15), ml = dmin * (b.scales[s] >> 4);
    for (int e = 16 * s; e < 16 * s + 16; ++e) y[e] = dl * crumb(b.qs, e) - ml;
  }
}

void block_q3_k(const BlockQ3_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int s = 0; s < kQK_K / 16; ++s) {
    const float dl = d * (q3_k_scale(s, b.scales) - 32);
    // A clear high bit means the code is negative: the 3-bit value is crumb - 4.
    for (int e = 16 * s; e < 16 * s + 16; ++e) y[e] = dl * (crumb(b.qs, e) - (lane_bit(b.hmask, e) ? 0 : 4));
  }
}

void block_q4_k(const BlockQ4_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < kQK_K / 32; ++s) {
    int sc, m;
    k4_scale_min(s, b.scales, &sc, &m);
    const float dl = d * sc, ml = dmin * m;
    for (int e = 32 * s; e < 32 * s + 32; ++e) y[e] = dl * nibble(b.qs, e) - ml;
  }
}

void block_q5_k(const BlockQ5_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < kQK_K / 32; ++s) {
    int sc, m;
    k4_scale_min(s, b.scales, &sc, &m);
    const float dl = d * sc, ml = dmin * m;
    for (int e = 32 * s; e < 32 * s + 32; ++e) y[e] = dl * (nibble(b.qs, e) | (lane_bit(b.qh, e) << 4)) - ml;
  }
}

// Element e's 6-bit code (0..63) of a Q6_K block.
inline int q6_code(const BlockQ6_K& b, int e) {
  const int h = e >> 7, g = (e >> 5) & 3, l = e & 31;
  const int lo = (b.ql[64 * h + 32 * (g & 1) + l] >> (4 * (g >> 1))) & 15;
  const int hi = (b.qh[32 * h + l] >> (2 * g)) & 3;
  return lo | (hi << 4);
}

void block_q6_k(const BlockQ6_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int s = 0; s < kQK_K / 16; ++s) {
    const float dl = d * b.scales[s];
    for (int e = 16 * s; e < 16 * s + 16; ++e) y[e] = dl * (q6_code(b, e) - 32);
  }
}

// Blocks are independent, so large tensors (a 7B model holds millions of
// blocks) decode in parallel; small ones stay on the calling thread.
template <typename Block, void (*Decode)(const Block&, float*)>
void dequantize_rows(const void* in, float* x, int64_t n, const char* name) {
  SHRINK_CHECK(n % kQK_K == 0, name, " needs a multiple of 256 values, got ", n);
  const auto* b = static_cast<const Block*>(in);
  const int64_t nb = n / kQK_K;
#pragma omp parallel for if (nb > 256)
  for (int64_t i = 0; i < nb; ++i) Decode(b[i], x + i * kQK_K);
}

}  // namespace

void k4_scale_min(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

int q3_k_scale(int j, const uint8_t* q) {
  const int lo = j < 8 ? (q[j] & 15) : (q[j - 8] >> 4);
  const int hi = (q[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
  return lo | (hi << 4);
}

void dequantize_q2_k(const void* in, float* x, int64_t n) {
  dequantize_rows<BlockQ2_K, block_q2_k>(in, x, n, "q2_k");
}
void dequantize_q3_k(const void* in, float* x, int64_t n) {
  dequantize_rows<BlockQ3_K, block_q3_k>(in, x, n, "q3_k");
}
void dequantize_q4_k(const void* in, float* x, int64_t n) {
  dequantize_rows<BlockQ4_K, block_q4_k>(in, x, n, "q4_k");
}
void dequantize_q5_k(const void* in, float* x, int64_t n) {
  dequantize_rows<BlockQ5_K, block_q5_k>(in, x, n, "q5_k");
}
void dequantize_q6_k(const void* in, float* x, int64_t n) {
  dequantize_rows<BlockQ6_K, block_q6_k>(in, x, n, "q6_k");
}

}  // namespace shrink::kernels
