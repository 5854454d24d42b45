#include "kernels/quant_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace shrink::kernels {

void quantize_q8_0(const float* x, void* out, int64_t n) {
  SHRINK_CHECK(n % kQK == 0, "q8_0 needs a multiple of 32 values, got ", n);
  auto* b = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(std::lround(x[j] * id));
  }
}

void dequantize_q8_0(const void* in, float* x, int64_t n) {
  const auto* b = static_cast<const BlockQ8_0*>(in);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) x[j] = d * b[i].qs[j];
  }
}

void quantize_q4_0(const float* x, void* out, int64_t n) {
  SHRINK_CHECK(n % kQK == 0, "q4_0 needs a multiple of 32 values, got ", n);
  auto* b = static_cast<BlockQ4_0*>(out);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    // ggml keeps the sign of the largest-magnitude value so that it maps to -8 exactly.
    float amax = 0, vmax = 0;
    for (int j = 0; j < kQK; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        vmax = x[j];
      }
    const float d = vmax / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x[j + kQK / 2] * id + 8.5f));
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void dequantize_q4_0(const void* in, float* x, int64_t n) {
  const auto* b = static_cast<const BlockQ4_0*>(in);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      x[j] = d * ((b[i].qs[j] & 0x0f) - 8);
      x[j + kQK / 2] = d * ((b[i].qs[j] >> 4) - 8);
    }
  }
}

namespace {
// [min, max] of one block, as the affine (Q4_1/Q5_1) quantizers need.
void block_range(const float* x, float* lo, float* hi) {
  *lo = x[0];
  *hi = x[0];
  for (int j = 1; j < kQK; ++j) {
    *lo = std::fmin(*lo, x[j]);
    *hi = std::fmax(*hi, x[j]);
  }
}

// The signed value of largest magnitude: the symmetric formats map it to the most
// negative level exactly, which gains one level over using |max|.
float signed_absmax(const float* x) {
  float amax = 0, vmax = 0;
  for (int j = 0; j < kQK; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      vmax = x[j];
    }
  return vmax;
}

uint32_t load_qh(const uint8_t qh[4]) {
  uint32_t h;
  std::memcpy(&h, qh, 4);  // ggml reads qh as a little-endian uint32
  return h;
}

// Stores 5-bit codes q[0..31] into the nibbles and the fifth-bit word of a Q5 block.
void pack_q5(const uint8_t* q, uint8_t* qs, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + kQK / 2] & 15) << 4));
    h |= static_cast<uint32_t>(q[j] >> 4) << j;
    h |= static_cast<uint32_t>(q[j + kQK / 2] >> 4) << (j + kQK / 2);
  }
  std::memcpy(qh, &h, 4);
}

// The 5-bit code of element j (0..31) of a Q5 block.
inline int q5_code(const uint8_t* qs, uint32_t h, int j) {
  const int nib = j < kQK / 2 ? (qs[j] & 15) : (qs[j - kQK / 2] >> 4);
  return nib | static_cast<int>(((h >> j) & 1) << 4);
}
}  // namespace

void quantize_q4_1(const float* x, void* out, int64_t n) {
  SHRINK_CHECK(n % kQK == 0, "q4_1 needs a multiple of 32 values, got ", n);
  auto* b = static_cast<BlockQ4_1*>(out);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float lo, hi;
    block_range(x, &lo, &hi);
    const float d = (hi - lo) / 15.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    b[i].m = f32_to_f16(lo);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>((x[j] - lo) * id + 0.5f));
      const int q1 = std::min(15, static_cast<int>((x[j + kQK / 2] - lo) * id + 0.5f));
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void dequantize_q4_1(const void* in, float* x, int64_t n) {
  const auto* b = static_cast<const BlockQ4_1*>(in);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      x[j] = d * (b[i].qs[j] & 0x0f) + m;
      x[j + kQK / 2] = d * (b[i].qs[j] >> 4) + m;
    }
  }
}

void quantize_q5_0(const float* x, void* out, int64_t n) {
  SHRINK_CHECK(n % kQK == 0, "q5_0 needs a multiple of 32 values, got ", n);
  auto* b = static_cast<BlockQ5_0*>(out);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = signed_absmax(x) / -16.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(std::clamp(static_cast<int>(x[j] * id + 16.5f), 0, 31));
    pack_q5(q, b[i].qs, b[i].qh);
  }
}

void dequantize_q5_0(const void* in, float* x, int64_t n) {
  const auto* b = static_cast<const BlockQ5_0*>(in);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = f16_to_f32(b[i].d);
    const uint32_t h = load_qh(b[i].qh);
    for (int j = 0; j < kQK; ++j) x[j] = d * (q5_code(b[i].qs, h, j) - 16);
  }
}

void quantize_q5_1(const float* x, void* out, int64_t n) {
  SHRINK_CHECK(n % kQK == 0, "q5_1 needs a multiple of 32 values, got ", n);
  auto* b = static_cast<BlockQ5_1*>(out);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float lo, hi;
    block_range(x, &lo, &hi);
    const float d = (hi - lo) / 31.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    b[i].m = f32_to_f16(lo);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j)
      q[j] = static_cast<uint8_t>(std::clamp(static_cast<int>((x[j] - lo) * id + 0.5f), 0, 31));
    pack_q5(q, b[i].qs, b[i].qh);
  }
}

void dequantize_q5_1(const void* in, float* x, int64_t n) {
  const auto* b = static_cast<const BlockQ5_1*>(in);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    const uint32_t h = load_qh(b[i].qh);
    for (int j = 0; j < kQK; ++j) x[j] = d * q5_code(b[i].qs, h, j) + m;
  }
}

}  // namespace shrink::kernels
