// 32-value ggml blocks. Quantizers are our rewrite of ggml-quants.c
// (ggml-org/llama.cpp): without importance quantize_row_*_ref, with importance
// quantize_row_*_impl as reached from ggml_quantize_chunk; tests check them byte
// for byte against llama.cpp's output (tests/data/ggml_quant).
#include "kernels/quant_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/quant_kblocks.h"
#include "kernels/quant_search.h"

namespace shrink::kernels {

namespace {

int64_t blocks_of(int64_t n, const char* name) {
  SHRINK_CHECK(n % kQK == 0, name, " quantizes rows of a multiple of 32 values, got a row of ", n);
  return n / kQK;
}

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

// Stores 4-bit codes q[0..31]: q[j] in the low nibble of qs[j], q[j+16] in the high one.
void pack_nibbles(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < kQK / 2; ++j) qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + kQK / 2] & 15) << 4));
}

// Stores 5-bit codes q[0..31] into the nibbles and the fifth-bit word of a Q5 block.
void pack_q5(const uint8_t* q, uint8_t* qs, uint8_t* qh) {
  uint32_t h = 0;
  pack_nibbles(q, qs);
  for (int j = 0; j < kQK; ++j) h |= static_cast<uint32_t>(q[j] >> 4) << j;
  std::memcpy(qh, &h, 4);
}

// The 5-bit code of element j (0..31) of a Q5 block.
inline int q5_code(const uint8_t* qs, uint32_t h, int j) {
  const int nib = j < kQK / 2 ? (qs[j] & 15) : (qs[j - kQK / 2] >> 4);
  return nib | static_cast<int>(((h >> j) & 1) << 4);
}

// The importance paths of the 32-value types (quantize_row_q4_0_impl etc.) weight
// value j by qw[j] * sqrt(sigma2 + x[j]^2), sigma2 being the mean square of the
// whole row: the importance quantizers therefore take exactly one row.
float row_sigma2(const float* x, int64_t n) {
  float sum_x2 = 0;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / static_cast<float>(n);
}

void block_weights(const float* xb, const float* qw, float sigma2, float* w) {
  for (int j = 0; j < kQK; ++j) w[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

// Symmetric types with importance: make_qx_quants(32, nmax) gives codes 0..2*nmax-1.
float symmetric_block_imatrix(const float* xb, const float* qw, float sigma2, int nmax, uint8_t* q) {
  float w[kQK];
  int8_t L[kQK];
  block_weights(xb, qw, sigma2, w);
  const float d = qsearch::make_qx_quants(kQK, nmax, xb, L, 1, w);
  for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(L[j]);
  return d;
}

// Affine types with importance: make_qkx3_quants(32, nmax); returns d, *m = stored min.
float affine_block_imatrix(const float* xb, const float* qw, float sigma2, int nmax, uint8_t* q, float* m) {
  float w[kQK], min;
  uint8_t Laux[kQK];
  block_weights(xb, qw, sigma2, w);
  const float d = qsearch::make_qkx_quants(kQK, nmax, xb, w, q, &min, Laux, -0.9f, 0.05f, 36, false);
  *m = -min;
  return d;
}

}  // namespace

// ------------------------------------------------------------------ Q8_0

void quantize_q8_0(const float* x, void* out, int64_t n, const float* /*importance: unused, as in ggml*/) {
  auto* b = static_cast<BlockQ8_0*>(out);
  const int64_t nb = blocks_of(n, "q8_0");
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
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

// ------------------------------------------------------------------ Q4_0

void quantize_q4_0(const float* x, void* out, int64_t n, const float* importance) {
  auto* b = static_cast<BlockQ4_0*>(out);
  const int64_t nb = blocks_of(n, "q4_0");
  const float sigma2 = importance ? row_sigma2(x, n) : 0;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    uint8_t q[kQK];
    if (importance) {
      b[i].d = f32_to_f16(symmetric_block_imatrix(x, importance + kQK * i, sigma2, 8, q));
    } else {
      const float d = signed_absmax(x) / -8.0f;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      b[i].d = f32_to_f16(d);
      for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(std::min(15, static_cast<int>(x[j] * id + 8.5f)));
    }
    pack_nibbles(q, b[i].qs);
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

// ------------------------------------------------------------------ Q4_1

void quantize_q4_1(const float* x, void* out, int64_t n, const float* importance) {
  auto* b = static_cast<BlockQ4_1*>(out);
  const int64_t nb = blocks_of(n, "q4_1");
  const float sigma2 = importance ? row_sigma2(x, n) : 0;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    uint8_t q[kQK];
    if (importance) {
      float m;
      b[i].d = f32_to_f16(affine_block_imatrix(x, importance + kQK * i, sigma2, 15, q, &m));
      b[i].m = f32_to_f16(m);
    } else {
      float lo, hi;
      block_range(x, &lo, &hi);
      const float d = (hi - lo) / 15.0f;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      b[i].d = f32_to_f16(d);
      b[i].m = f32_to_f16(lo);
      for (int j = 0; j < kQK; ++j)
        q[j] = static_cast<uint8_t>(std::min(15, static_cast<int>((x[j] - lo) * id + 0.5f)));
    }
    pack_nibbles(q, b[i].qs);
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

// ------------------------------------------------------------------ Q5_0

void quantize_q5_0(const float* x, void* out, int64_t n, const float* importance) {
  auto* b = static_cast<BlockQ5_0*>(out);
  const int64_t nb = blocks_of(n, "q5_0");
  const float sigma2 = importance ? row_sigma2(x, n) : 0;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    uint8_t q[kQK];
    if (importance) {
      b[i].d = f32_to_f16(symmetric_block_imatrix(x, importance + kQK * i, sigma2, 16, q));
    } else {
      const float d = signed_absmax(x) / -16.0f;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      b[i].d = f32_to_f16(d);
      for (int j = 0; j < kQK; ++j)
        q[j] = static_cast<uint8_t>(std::clamp(static_cast<int>(x[j] * id + 16.5f), 0, 31));
    }
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

// ------------------------------------------------------------------ Q5_1

void quantize_q5_1(const float* x, void* out, int64_t n, const float* importance) {
  auto* b = static_cast<BlockQ5_1*>(out);
  const int64_t nb = blocks_of(n, "q5_1");
  const float sigma2 = importance ? row_sigma2(x, n) : 0;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    uint8_t q[kQK];
    if (importance) {
      float m;
      b[i].d = f32_to_f16(affine_block_imatrix(x, importance + kQK * i, sigma2, 31, q, &m));
      b[i].m = f32_to_f16(m);
    } else {
      float lo, hi;
      block_range(x, &lo, &hi);
      const float d = (hi - lo) / 31.0f;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      b[i].d = f32_to_f16(d);
      b[i].m = f32_to_f16(lo);
      for (int j = 0; j < kQK; ++j)
        q[j] = static_cast<uint8_t>(std::clamp(static_cast<int>((x[j] - lo) * id + 0.5f), 0, 31));
    }
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

// ------------------------------------------------------------------ IQ4_NL

namespace {
// ggml's best_index_int8: the index of the table value nearest to v (ties to the
// lower one), by bisection of the sorted table.
int best_index_iq4nl(float v) {
  const int8_t* val = kIQ4NLValues;
  if (v <= val[0]) return 0;
  if (v >= val[15]) return 15;
  int ml = 0, mu = 15;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (v < val[mav])
      mu = mav;
    else
      ml = mav;
  }
  return v - val[mu - 1] < val[mu] - v ? mu - 1 : mu;
}

// Weighted least-squares scale of x against the table at codes chosen for 1/id;
// returns sum(w q x) and *sumq2 = sum(w q^2).
float iq4nl_fit(const float* xb, const float* w, float id, float* sumq2, uint8_t* L) {
  float sumqx = 0;
  *sumq2 = 0;
  for (int j = 0; j < kQK; ++j) {
    const int l = best_index_iq4nl(id * xb[j]);
    if (L) L[j] = static_cast<uint8_t>(l);
    const float q = kIQ4NLValues[l];
    sumqx += w[j] * q * xb[j];
    *sumq2 += w[j] * q * q;
  }
  return sumqx;
}

// quantize_row_iq4_nl_impl with super_block_size == block_size == 32, ntry = 7 (what
// ggml_quantize_chunk uses with and without importance): the block scale, f32.
float iq4nl_scale(const float* xb, const float* qw) {
  float w[kQK];
  float sigma2 = 0;
  for (int j = 0; j < kQK; ++j) sigma2 += xb[j] * xb[j];
  sigma2 *= 2.f / kQK;
  for (int j = 0; j < kQK; ++j) w[j] = qw ? qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]) : xb[j] * xb[j];
  float amax = 0, max = 0;
  for (int j = 0; j < kQK; ++j)
    if (std::fabs(xb[j]) > amax) {
      amax = std::fabs(xb[j]);
      max = xb[j];
    }
  if (amax < 1e-15f) return 0;  // GROUP_MAX_EPS
  constexpr int ntry = 7;
  float sumq2;
  const float sumqx = iq4nl_fit(xb, w, 1 / (-max / kIQ4NLValues[0]), &sumq2, nullptr);
  float d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  for (int itry = -ntry; itry <= ntry; ++itry) {
    const float s = iq4nl_fit(xb, w, (itry + kIQ4NLValues[0]) / max, &sumq2, nullptr);
    if (sumq2 > 0 && s * s > best * sumq2) {
      d = s / sumq2;
      best = d * s;
    }
  }
  return d;
}
}  // namespace

const int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

void quantize_iq4_nl(const float* x, void* out, int64_t n, const float* importance) {
  auto* b = static_cast<BlockIQ4_NL*>(out);
  const int64_t nb = blocks_of(n, "iq4_nl");
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = iq4nl_scale(x, importance ? importance + kQK * i : nullptr);
    b[i].d = f32_to_f16(d);
    // Codes are chosen for the unrounded d, as in ggml.
    const float id = d ? 1 / d : 0;
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(best_index_iq4nl(id * x[j]));
    pack_nibbles(q, b[i].qs);
  }
}

void dequantize_iq4_nl(const void* in, float* x, int64_t n) {
  const auto* b = static_cast<const BlockIQ4_NL*>(in);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      x[j] = d * kIQ4NLValues[b[i].qs[j] & 15];
      x[j + kQK / 2] = d * kIQ4NLValues[b[i].qs[j] >> 4];
    }
  }
}

// ------------------------------------------------------------------ dispatch

namespace {
using QuantizeFn = void (*)(const float*, void*, int64_t, const float*);
using DequantizeFn = void (*)(const void*, float*, int64_t);
struct Kernels {
  QuantizeFn q;
  DequantizeFn dq;
};

Kernels kernels_of(DType t) {
  switch (t) {
    case DType::Q8_0: return {quantize_q8_0, dequantize_q8_0};
    case DType::Q4_0: return {quantize_q4_0, dequantize_q4_0};
    case DType::Q4_1: return {quantize_q4_1, dequantize_q4_1};
    case DType::Q5_0: return {quantize_q5_0, dequantize_q5_0};
    case DType::Q5_1: return {quantize_q5_1, dequantize_q5_1};
    case DType::Q2_K: return {quantize_q2_k, dequantize_q2_k};
    case DType::Q3_K: return {quantize_q3_k, dequantize_q3_k};
    case DType::Q4_K: return {quantize_q4_k, dequantize_q4_k};
    case DType::Q5_K: return {quantize_q5_k, dequantize_q5_k};
    case DType::Q6_K: return {quantize_q6_k, dequantize_q6_k};
    case DType::IQ4_NL: return {quantize_iq4_nl, dequantize_iq4_nl};
    default: return {nullptr, nullptr};
  }
}
}  // namespace

bool has_block_quantizer(DType t) { return kernels_of(t).q != nullptr; }

void quantize_row(DType t, const float* x, void* blocks, int64_t n, const float* importance) {
  const Kernels k = kernels_of(t);
  SHRINK_CHECK(k.q, "no quantizer for ", dtype_name(t));
  k.q(x, blocks, n, importance);
}

void quantize_rows(DType t, const float* x, void* blocks, int64_t nrows, int64_t n_per_row,
                   const float* importance) {
  const Kernels k = kernels_of(t);
  SHRINK_CHECK(k.q, "no quantizer for ", dtype_name(t));
  SHRINK_CHECK(n_per_row % dtype_traits(t).block_elems == 0, dtype_name(t), " needs rows of a multiple of ",
               dtype_traits(t).block_elems, " values, got rows of ", n_per_row);
  const int64_t row_bytes = dtype_bytes(t, n_per_row);
  // Rows are independent (ggml's importance statistics never cross rows), so the
  // result does not depend on the thread count.
#pragma omp parallel for schedule(dynamic, 1) if (nrows * n_per_row >= (int64_t{1} << 16))
  for (int64_t r = 0; r < nrows; ++r)
    k.q(x + r * n_per_row, static_cast<char*>(blocks) + r * row_bytes, n_per_row, importance);
}

void dequantize_row(DType t, const void* blocks, float* x, int64_t n) {
  const Kernels k = kernels_of(t);
  SHRINK_CHECK(k.dq, "no block dequantizer for ", dtype_name(t));
  SHRINK_CHECK(n % dtype_traits(t).block_elems == 0, dtype_name(t), " needs a multiple of ",
               dtype_traits(t).block_elems, " values, got ", n);
  k.dq(blocks, x, n);
}

}  // namespace shrink::kernels
