#include "kernels/quant_blocks.h"

#include <algorithm>
#include <cmath>

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

}  // namespace shrink::kernels
