// K-quant quantizers (declared in quant_kblocks.h): our rewrite of ggml's
// quantize_row_q*_K_ref (no importance) and quantize_row_q*_K_impl (with an
// importance vector), ggml/src/ggml-quants.c of ggml-org/llama.cpp, checked byte
// for byte against llama.cpp 0ad4a86's ggml_quantize_chunk by the fixtures in
// tests/data/ggml_quant. Each block is quantized in two steps, as in ggml:
//   1. search the sub-block scales (and mins), quantize them to 4/6/8 bits
//      against one f16 super-block scale: "header_*" functions;
//   2. requantize every value against the header as stored (f16-rounded), and
//      pack the codes: "codes_*" functions, shared by both paths.
// Float expressions keep ggml's operand order; see quant_search.h.
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/quant_kblocks.h"
#include "kernels/quant_search.h"

namespace shrink::kernels {

namespace {

using qsearch::imax;
using qsearch::imin;
using qsearch::make_qkx_quants;
using qsearch::make_qp_quants;
using qsearch::make_qx_quants;
using qsearch::nearest_int;

constexpr int kSub16 = kQK_K / 16, kSub32 = kQK_K / 32;

// Sum of squares of the 256 values of a super-block (the impl paths' sigma2).
float sum_sq(const float* x, int n) {
  float s = 0;
  for (int j = 0; j < n; ++j) s += x[j] * x[j];
  return s;
}

// Importance-scaled weights of the impl paths: qw[l] * sqrt(sigma2 + x[l]^2); returns their sum.
float imatrix_weights(const float* qw, const float* x, float sigma2, int n, float* w) {
  float sumw = 0;
  for (int l = 0; l < n; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[l] * x[l]);
  for (int l = 0; l < n; ++l) sumw += w[l];
  return sumw;
}

// Within each 128-value half, byte l carries values l, l+32, l+64, l+96 in bit pairs 0, 2, 4, 6.
void pack_crumbs(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// ------------------------------------------------------------------ Q2_K

void header_q2_k_ref(const float* x, BlockQ2_K* y, uint8_t* L) {
  constexpr float q4scale = 15.f;
  uint8_t Laux[16];
  float weights[16], mins[kSub16], scales[kSub16];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kSub16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = make_qkx_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < kSub16; ++j) y->scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    y->d = f32_to_f16(max_scale / q4scale);
  } else {
    std::memset(y->scales, 0, sizeof y->scales);
    y->d = f32_to_f16(0.f);
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < kSub16; ++j) y->scales[j] = static_cast<uint8_t>(y->scales[j] | (nearest_int(iscale * mins[j]) << 4));
    y->dmin = f32_to_f16(max_min / q4scale);
  } else {
    y->dmin = f32_to_f16(0.f);
  }
}

void header_q2_k_imatrix(const float* x, const float* qw, BlockQ2_K* y, uint8_t* L) {
  uint8_t Laux[16], Ls[kSub16], Lm[kSub16];
  float weight[16], sw[kSub16], mins[kSub16], scales[kSub16];
  const float sigma2 = sum_sq(x, kQK_K) / kQK_K;
  for (int j = 0; j < kSub16; ++j) {
    sw[j] = imatrix_weights(qw + 16 * j, x + 16 * j, sigma2, 16, weight);
    scales[j] = make_qkx_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
  }
  const float dm = make_qp_quants(kSub16, 15, scales, Ls, sw);
  const float mm = make_qp_quants(kSub16, 15, mins, Lm, sw);
  y->d = f32_to_f16(dm);
  y->dmin = f32_to_f16(mm);
  for (int j = 0; j < kSub16; ++j) y->scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
}

void codes_q2_k(const float* x, BlockQ2_K* y, uint8_t* L) {
  const float dd = f16_to_f32(y->d), dmin = f16_to_f32(y->dmin);
  for (int j = 0; j < kSub16; ++j) {
    const float d = dd * (y->scales[j] & 0xF);
    if (!d) continue;  // keeps the codes of the scale search, as ggml does
    const float dm = dmin * (y->scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<uint8_t>(imax(0, imin(3, nearest_int((x[16 * j + ii] + dm) / d))));
  }
  pack_crumbs(L, y->qs);
}

// ------------------------------------------------------------------ Q3_K

// 16 6-bit scales (0..63) into 12 bytes: low nibbles in bytes 0..7 (j >= 8 in the
// high half of byte j-8), top 2 bits in bits 2*(j/4) of byte 8 + j%4.
void pack_q3_k_scales(const int* ls, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int j = 0; j < kSub16; ++j) {
    const int l = ls[j];
    if (j < 8)
      scales[j] = static_cast<uint8_t>(l & 0xF);
    else
      scales[j - 8] = static_cast<uint8_t>(scales[j - 8] | ((l & 0xF) << 4));
    scales[j % 4 + 8] = static_cast<uint8_t>(scales[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
  }
}

void header_q3_k_ref(const float* x, BlockQ3_K* y, int8_t* L) {
  float scales[kSub16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < kSub16; ++j) {
    scales[j] = qsearch::make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
    const float scale = std::fabs(scales[j]);
    if (scale > amax) {
      amax = scale;
      max_scale = scales[j];
    }
  }
  if (!max_scale) {
    std::memset(y->scales, 0, 12);
    y->d = f32_to_f16(0.f);
    return;
  }
  const float iscale = -32.f / max_scale;
  int ls[kSub16];
  for (int j = 0; j < kSub16; ++j) {
    const auto l = static_cast<int8_t>(nearest_int(iscale * scales[j]));  // ggml narrows first
    ls[j] = imax(-32, imin(31, l)) + 32;
  }
  pack_q3_k_scales(ls, y->scales);
  y->d = f32_to_f16(1 / iscale);
}

void header_q3_k_imatrix(const float* x, const float* qw, BlockQ3_K* y, int8_t* L) {
  float scales[kSub16], weight[16], sw[kSub16];
  int8_t Ls[kSub16];
  const float sigma2 = 2 * sum_sq(x, kQK_K) / kQK_K;
  for (int j = 0; j < kSub16; ++j) {
    sw[j] = imatrix_weights(qw + 16 * j, x + 16 * j, sigma2, 16, weight);
    scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
  }
  const float d_block = make_qx_quants(kSub16, 32, scales, Ls, 1, sw);
  int ls[kSub16];
  for (int j = 0; j < kSub16; ++j) ls[j] = Ls[j];
  pack_q3_k_scales(ls, y->scales);
  y->d = f32_to_f16(d_block);
}

void codes_q3_k(const float* x, BlockQ3_K* y, int8_t* L) {
  const float dd = f16_to_f32(y->d);
  for (int j = 0; j < kSub16; ++j) {
    const float d = dd * static_cast<int8_t>(q3_k_scale(j, y->scales) - 32);
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<int8_t>(imax(-4, imin(3, nearest_int(x[16 * j + ii] / d))) + 4);
  }
  // Codes 4..7 set bit j/32 of hmask[j%32] and keep their low 2 bits in qs.
  std::memset(y->hmask, 0, sizeof y->hmask);
  uint8_t low[kQK_K];
  for (int j = 0; j < kQK_K; ++j) {
    const bool high = L[j] > 3;
    if (high) y->hmask[j % 32] = static_cast<uint8_t>(y->hmask[j % 32] | (1 << (j / 32)));
    low[j] = static_cast<uint8_t>(high ? L[j] - 4 : L[j]);
  }
  pack_crumbs(low, y->qs);
}

// ------------------------------------------------------------------ Q4_K / Q5_K

// 8 pairs of 6-bit (scale, min) into 12 bytes (the inverse of k4_scale_min).
void pack_k4_scales(const uint8_t* ls, const uint8_t* lm, uint8_t* s) {
  for (int j = 0; j < kSub32; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((ls[j] >> 4) << 6));
      s[j] = static_cast<uint8_t>(s[j] | ((lm[j] >> 4) << 6));
    }
  }
}

// Q4_K/Q5_K header without importance (quantize_row_q4_K_ref / q5_K_ref): per
// 32-value sub-block weights sqrt(mean x^2) + |x|, then scales and mins on a
// 6-bit grid against their maxima. Returns d and dmin through the block fields.
void header_k4_ref(const float* x, int nmax, float rmin, int nstep, uint16_t* d, uint16_t* dmin, uint8_t* packed,
                   uint8_t* L) {
  uint8_t Laux[32];
  float weights[32], mins[kSub32], scales[kSub32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kSub32; ++j) {
    const float av_x = std::sqrt(sum_sq(x + 32 * j, 32) / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[kSub32], lm[kSub32];
  for (int j = 0; j < kSub32; ++j) {
    // ggml narrows to uint8_t before clamping: a (rare) negative scale becomes 63.
    ls[j] = static_cast<uint8_t>(imin(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j]))));
    lm[j] = static_cast<uint8_t>(imin(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j]))));
  }
  pack_k4_scales(ls, lm, packed);
  *d = f32_to_f16(max_scale / 63.f);
  *dmin = f32_to_f16(max_min / 63.f);
}

// quantize_row_q4_K_impl / q5_K_impl: importance-weighted sub-block fits, then the
// 6-bit scales and mins by make_qp_quants weighted by each sub-block's total weight.
void header_k4_imatrix(const float* x, const float* qw, int nmax, uint16_t* d, uint16_t* dmin, uint8_t* packed,
                       uint8_t* L) {
  uint8_t Laux[32], Ls[kSub32], Lm[kSub32];
  float weights[32], sw[kSub32], mins[kSub32], scales[kSub32];
  const float sigma2 = 2 * sum_sq(x, kQK_K) / kQK_K;
  for (int j = 0; j < kSub32; ++j) {
    sw[j] = imatrix_weights(qw + 32 * j, x + 32 * j, sigma2, 32, weights);
    scales[j] = make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
  }
  const float d_block = make_qp_quants(kSub32, 63, scales, Ls, sw);
  const float m_block = make_qp_quants(kSub32, 63, mins, Lm, sw);
  pack_k4_scales(Ls, Lm, packed);
  *d = f32_to_f16(d_block);
  *dmin = f32_to_f16(m_block);
}

void codes_k4(const float* x, uint16_t d16, uint16_t dmin16, const uint8_t* packed, int nmax, uint8_t* L) {
  const float dd = f16_to_f32(d16), dmin = f16_to_f32(dmin16);
  for (int j = 0; j < kSub32; ++j) {
    int sc, m;
    k4_scale_min(j, packed, &sc, &m);
    const float d = dd * sc;
    if (!d) continue;
    const float dm = dmin * m;
    for (int ii = 0; ii < 32; ++ii)
      L[32 * j + ii] = static_cast<uint8_t>(imax(0, imin(nmax, nearest_int((x[32 * j + ii] + dm) / d))));
  }
}

// Each 64-value chunk fills 32 bytes: value l in the low nibble, l+32 in the high
// one; Q5_K's fifth bits go to bit 2c (value l) and 2c+1 (value l+32) of qh[l].
void pack_k4_codes(const uint8_t* L, uint8_t* qs, uint8_t* qh) {
  if (qh) std::memset(qh, 0, kQK_K / 8);
  for (int c = 0; c < kQK_K / 64; ++c)
    for (int l = 0; l < 32; ++l) {
      const int l1 = L[64 * c + l], l2 = L[64 * c + l + 32];
      qs[32 * c + l] = static_cast<uint8_t>((l1 & 0xF) | ((l2 & 0xF) << 4));
      if (qh) qh[l] = static_cast<uint8_t>(qh[l] | ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
    }
}

// ------------------------------------------------------------------ Q6_K

// Returns false for an all-zero block (written as zeros, as ggml does).
bool header_q6_k(const float* x, const float* qw, BlockQ6_K* y, int8_t* L) {
  float scales[kSub16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < kSub16; ++ib) {
    // ggml's impl passes the raw importance here (its sigma2 weighting is commented out).
    scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, qw ? qw + 16 * ib : nullptr);
    const float abs_scale = std::fabs(scales[ib]);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = scales[ib];
    }
  }
  if (max_abs_scale < 1e-15f) {  // GROUP_MAX_EPS
    std::memset(y, 0, sizeof *y);
    y->d = f32_to_f16(0.f);
    return false;
  }
  const float iscale = -128.f / max_scale;
  y->d = f32_to_f16(1 / iscale);
  for (int ib = 0; ib < kSub16; ++ib) y->scales[ib] = static_cast<int8_t>(imin(127, nearest_int(iscale * scales[ib])));
  return true;
}

void codes_q6_k(const float* x, BlockQ6_K* y, int8_t* L) {
  const float dd = f16_to_f32(y->d);
  for (int j = 0; j < kSub16; ++j) {
    const float d = dd * y->scales[j];
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<int8_t>(imax(-32, imin(31, nearest_int(x[16 * j + ii] / d))) + 32);
  }
  for (int h = 0; h < 2; ++h) {
    const int8_t* v = L + 128 * h;
    uint8_t* ql = y->ql + 64 * h;
    uint8_t* qh = y->qh + 32 * h;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
    }
  }
}

// ------------------------------------------------------------------ rows

int64_t super_blocks(int64_t n, const char* name) {
  SHRINK_CHECK(n % kQK_K == 0, name, " quantizes rows of a multiple of 256 values, got a row of ", n,
               " (use a 32-value type for this tensor)");
  return n / kQK_K;
}

}  // namespace

void quantize_q2_k(const float* x, void* out, int64_t n, const float* importance) {
  auto* y = static_cast<BlockQ2_K*>(out);
  const int64_t nb = super_blocks(n, "q2_k");
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    uint8_t L[kQK_K];
    if (importance)
      header_q2_k_imatrix(x, importance + kQK_K * i, &y[i], L);
    else
      header_q2_k_ref(x, &y[i], L);
    codes_q2_k(x, &y[i], L);
  }
}

void quantize_q3_k(const float* x, void* out, int64_t n, const float* importance) {
  auto* y = static_cast<BlockQ3_K*>(out);
  const int64_t nb = super_blocks(n, "q3_k");
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    int8_t L[kQK_K];
    if (importance)
      header_q3_k_imatrix(x, importance + kQK_K * i, &y[i], L);
    else
      header_q3_k_ref(x, &y[i], L);
    codes_q3_k(x, &y[i], L);
  }
}

void quantize_q4_k(const float* x, void* out, int64_t n, const float* importance) {
  auto* y = static_cast<BlockQ4_K*>(out);
  const int64_t nb = super_blocks(n, "q4_k");
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    uint8_t L[kQK_K];
    BlockQ4_K& b = y[i];
    if (importance)
      header_k4_imatrix(x, importance + kQK_K * i, 15, &b.d, &b.dmin, b.scales, L);
    else
      header_k4_ref(x, 15, -1.f, 20, &b.d, &b.dmin, b.scales, L);
    codes_k4(x, b.d, b.dmin, b.scales, 15, L);
    pack_k4_codes(L, b.qs, nullptr);
  }
}

void quantize_q5_k(const float* x, void* out, int64_t n, const float* importance) {
  auto* y = static_cast<BlockQ5_K*>(out);
  const int64_t nb = super_blocks(n, "q5_k");
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    uint8_t L[kQK_K];
    BlockQ5_K& b = y[i];
    if (importance)
      header_k4_imatrix(x, importance + kQK_K * i, 31, &b.d, &b.dmin, b.scales, L);
    else
      header_k4_ref(x, 31, -0.5f, 15, &b.d, &b.dmin, b.scales, L);
    codes_k4(x, b.d, b.dmin, b.scales, 31, L);
    pack_k4_codes(L, b.qs, b.qh);
  }
}

void quantize_q6_k(const float* x, void* out, int64_t n, const float* importance) {
  auto* y = static_cast<BlockQ6_K*>(out);
  const int64_t nb = super_blocks(n, "q6_k");
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    int8_t L[kQK_K];
    if (header_q6_k(x, importance ? importance + kQK_K * i : nullptr, &y[i], L)) codes_q6_k(x, &y[i], L);
  }
}

}  // namespace shrink::kernels
