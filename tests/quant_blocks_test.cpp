// ggml block formats: hand-built blocks decode to what ggml's layout says,
// struct sizes match ggml's, the 32-value quantizers round-trip, and the real
// llama.cpp files of teacher-9M (which mix Q4_0/Q4_K/Q6_K/Q8_0) load, stay close
// to the F32 weights and give llama.cpp's perplexities (skipped without ../shared).
//
// The K-quant blocks are built here by a writer-side description of the layout
// (how ggml's quantize_row_q*_K_ref packs codes and scales, ggml/src/ggml-quants.c),
// so that the reader in src/kernels is checked against an independent formulation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>

#include "core/file.h"
#include "core/tensor.h"
#include "eval/perplexity.h"
#include "io/gguf.h"
#include "io/model_file.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_grid.h"
#include "kernels/quant_kblocks.h"
#include "model/transformer.h"
#include "test_util.h"

namespace shrink {
namespace {

using namespace kernels;

constexpr uint16_t kHalf = 0x3800, kQuarter = 0x3400, kOne = 0x3C00, kMinusOne = 0xBC00;  // f16 bit patterns

std::vector<float> decode(DType t, const void* block) {
  std::vector<float> y(static_cast<size_t>(dtype_traits(t).block_elems));
  convert_to_f32(t, block, y.data(), static_cast<int64_t>(y.size()));
  return y;
}

// ------------------------------------------------------------------ structure

TEST(QuantBlocks, SizesMatchGgml) {
  struct Row {
    DType t;
    const char* name;
    int64_t elems, bytes;
    size_t struct_size;
  };
  const Row rows[] = {
      {DType::Q8_0, "q8_0", 32, 34, sizeof(BlockQ8_0)},  {DType::Q4_0, "q4_0", 32, 18, sizeof(BlockQ4_0)},
      {DType::Q4_1, "q4_1", 32, 20, sizeof(BlockQ4_1)},  {DType::Q5_0, "q5_0", 32, 22, sizeof(BlockQ5_0)},
      {DType::Q5_1, "q5_1", 32, 24, sizeof(BlockQ5_1)},  {DType::Q2_K, "q2_k", 256, 84, sizeof(BlockQ2_K)},
      {DType::Q3_K, "q3_k", 256, 110, sizeof(BlockQ3_K)}, {DType::Q4_K, "q4_k", 256, 144, sizeof(BlockQ4_K)},
      {DType::Q5_K, "q5_k", 256, 176, sizeof(BlockQ5_K)}, {DType::Q6_K, "q6_k", 256, 210, sizeof(BlockQ6_K)},
  };
  for (const Row& r : rows) {
    const DTypeTraits& tr = dtype_traits(r.t);
    EXPECT_EQ(tr.name, r.name);
    EXPECT_EQ(tr.block_elems, r.elems) << r.name;
    EXPECT_EQ(tr.block_bytes, r.bytes) << r.name;
    EXPECT_EQ(static_cast<int64_t>(r.struct_size), r.bytes) << r.name;
    EXPECT_EQ(parse_dtype(std::string(r.name)), r.t);
    // The GGUF reader's ggml table agrees, and the ggml id maps back to this DType.
    uint32_t id = 0;
    ASSERT_TRUE(dtype_to_ggml(r.t, &id)) << r.name;
    int64_t be = 0, bb = 0;
    ASSERT_TRUE(ggml_type_size(id, &be, &bb));
    EXPECT_EQ(be, r.elems) << r.name;
    EXPECT_EQ(bb, r.bytes) << r.name;
    DType back{};
    ASSERT_TRUE(ggml_to_dtype(id, &back));
    EXPECT_EQ(back, r.t);
  }
  EXPECT_EQ(dtype_bytes(DType::Q6_K, 4096 * 256), 4096 * 210);
  EXPECT_THROW(dtype_bytes(DType::Q4_K, 128), Error);
  std::vector<float> y(128);
  const std::vector<uint8_t> raw(144);
  EXPECT_THROW(convert_to_f32(DType::Q4_K, raw.data(), y.data(), 128), Error);  // not a whole super-block
  EXPECT_THROW(convert_from_f32(DType::Q4_K, y.data(), nullptr, 128), Error);   // not a whole super-block
}

// ------------------------------------------------------------------ 32-value blocks

TEST(QuantBlocks, Q4_1HandBuilt) {
  BlockQ4_1 b{};
  b.d = kHalf;
  b.m = kMinusOne;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto y = decode(DType::Q4_1, &b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * j - 1) << j;              // low nibbles: elements 0..15
    EXPECT_EQ(y[j + 16], 0.5f * (15 - j) - 1) << j;  // high nibbles: elements 16..31
  }
}

// Q5 codes as the layout describes them, reading qh byte by byte (bit e of the
// little-endian 32-bit word is bit e%8 of byte e/8).
int q5_spec_code(const uint8_t* qs, const uint8_t* qh, int e) {
  const int nib = e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
  return nib | (((qh[e / 8] >> (e % 8)) & 1) << 4);
}

template <typename Block>
void fill_q5(Block& b) {
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((j & 15) | ((~j & 15) << 4));
  const uint8_t qh[4] = {0x0F, 0xF0, 0xA5, 0x5A};
  std::memcpy(b.qh, qh, 4);
}

TEST(QuantBlocks, Q5_0HandBuilt) {
  BlockQ5_0 b{};
  b.d = kQuarter;
  fill_q5(b);
  const auto y = decode(DType::Q5_0, &b);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], 0.25f * (q5_spec_code(b.qs, b.qh, e) - 16)) << e;
  // Worked by hand: (nibble, fifth bit) -> code - 16.
  EXPECT_EQ(y[0], 0.0f);    // (0, 1) -> 0
  EXPECT_EQ(y[3], 0.75f);   // (3, 1) -> 3
  EXPECT_EQ(y[4], -3.0f);   // (4, 0) -> -12
  EXPECT_EQ(y[16], 3.75f);  // (15, bit 0 of 0xA5 = 1) -> 15
  EXPECT_EQ(y[17], -0.5f);  // (14, bit 1 of 0xA5 = 0) -> -2
  EXPECT_EQ(y[30], 0.25f);  // (1, bit 6 of 0x5A = 1) -> 1
  EXPECT_EQ(y[31], -4.0f);  // (0, bit 7 of 0x5A = 0) -> -16
}

TEST(QuantBlocks, Q5_1HandBuilt) {
  BlockQ5_1 b{};
  b.d = kHalf;
  b.m = kOne;
  fill_q5(b);
  const auto y = decode(DType::Q5_1, &b);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], 0.5f * q5_spec_code(b.qs, b.qh, e) + 1) << e;
  EXPECT_EQ(y[16], 16.5f);  // code 31
  EXPECT_EQ(y[31], 1.0f);   // code 0
}

// Quantize -> dequantize stays within half a step (plus f16 rounding of d and m),
// and typed conversion through Tensor::to agrees with the kernels.
TEST(QuantBlocks, SmallBlockQuantizersRoundTrip) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.3f, 1.0f);
  const int64_t n = 32 * 64;
  Tensor x = Tensor::alloc(DType::F32, {64, 32});
  for (int64_t i = 0; i < n; ++i) x.f32()[i] = nd(rng);
  x.f32()[5] = 0;  // a block with an exact zero and one that is constant
  for (int j = 32; j < 64; ++j) x.f32()[j] = 1.25f;
  for (DType t : {DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
    const Tensor y = x.to(t).to(DType::F32);
    const int levels = t == DType::Q4_1 ? 15 : 31;
    for (int64_t b = 0; b < n / 32; ++b) {
      float lo = x.f32()[b * 32], hi = lo, amax = 0;
      for (int j = 0; j < 32; ++j) {
        const float v = x.f32()[b * 32 + j];
        lo = std::min(lo, v), hi = std::max(hi, v), amax = std::max(amax, std::fabs(v));
      }
      // Q5_0 (like ggml's) gives the top level to -amax's sign only, so the other
      // end can clip by up to one step; the affine formats round to half a step.
      const float step = t == DType::Q5_0 ? amax / 16 : (hi - lo) / levels;
      const float tol = (t == DType::Q5_0 ? 1.0f : 0.5f) * step + 2e-3f * (amax + step * levels);
      for (int j = 0; j < 32; ++j)
        ASSERT_NEAR(y.f32()[b * 32 + j], x.f32()[b * 32 + j], tol) << dtype_name(t) << " block " << b << " " << j;
    }
  }
}

// ------------------------------------------------------------------ K-quants

// Codes and 6-bit scales for the K-quant tests: every code value and scale bit
// occurs, neighbours differ, and the top bits of scales (packed apart) vary.
int test_code(int e, int levels) { return (e * 7 + e / 16 + 3) % levels; }
int test_scale6(int j) { return (63 - 5 * j + 64) % 64; }
int test_min6(int j) { return (2 + 9 * j) % 64; }

// Writer side of the 2-bit planes (Q2_K, Q3_K): within each 128-value half,
// byte l holds values l, l+32, l+64, l+96 in bit pairs 0, 2, 4, 6.
void pack_crumbs(const int* q, uint8_t* qs) {
  for (int half = 0; half < 2; ++half)
    for (int l = 0; l < 32; ++l) {
      const int* v = q + 128 * half + l;
      qs[32 * half + l] = static_cast<uint8_t>(v[0] | (v[32] << 2) | (v[64] << 4) | (v[96] << 6));
    }
}

// Writer side of Q4_K/Q5_K's 12 scale bytes: sub-blocks 0..3 whole in bytes 0..7;
// 4..7 split into low nibbles in bytes 8..11 and top bits in bits 6..7 of bytes 0..7.
void pack_k4_scales(const int* sc, const int* m, uint8_t* out) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] |= static_cast<uint8_t>(sc[j]);
      out[j + 4] |= static_cast<uint8_t>(m[j]);
    } else {
      out[j + 4] = static_cast<uint8_t>((sc[j] & 15) | ((m[j] & 15) << 4));
      out[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      out[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
}

// Writer side of Q4_K/Q5_K's low nibbles: each 64-value chunk fills 32 bytes,
// value l in the low nibble and value l+32 in the high one.
void pack_nibbles(const int* q, uint8_t* qs) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const int* v = q + 64 * c + l;
      qs[32 * c + l] = static_cast<uint8_t>((v[0] & 15) | ((v[32] & 15) << 4));
    }
}

TEST(QuantBlocks, Q2_KHandBuilt) {
  BlockQ2_K b{};
  b.d = kHalf;
  b.dmin = kQuarter;
  int q[256];
  for (int e = 0; e < 256; ++e) q[e] = test_code(e, 4);
  pack_crumbs(q, b.qs);
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<uint8_t>((test_scale6(s) & 15) | ((test_min6(s) & 15) << 4));
  const auto y = decode(DType::Q2_K, &b);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 16;
    EXPECT_EQ(y[e], 0.5f * (test_scale6(s) & 15) * q[e] - 0.25f * (test_min6(s) & 15)) << e;
  }
  // By hand: sub-block 5 (values 80..95) is group 2 of the first half, lanes 16..31,
  // so value 80 lives in bits 4..5 of qs[16]; value 112 (sub-block 7) in bits 6..7.
  BlockQ2_K h{};
  h.d = kOne;
  h.dmin = kHalf;
  h.scales[5] = 0x34;  // scale 4, min 3
  h.scales[7] = 0x11;  // scale 1, min 1
  h.qs[16] = 0x70;     // bits 4..5 = 3, bits 6..7 = 1
  const auto z = decode(DType::Q2_K, &h);
  EXPECT_EQ(z[80], 4 * 3 - 1.5f);
  EXPECT_EQ(z[112], 1 * 1 - 0.5f);
  EXPECT_EQ(z[16], 0.0f);
  EXPECT_EQ(z[81], -1.5f);  // code 0: just the min
}

TEST(QuantBlocks, Q3_KHandBuilt) {
  BlockQ3_K b{};
  b.d = kQuarter;
  int q[256], low[256];
  for (int e = 0; e < 256; ++e) q[e] = test_code(e, 8) - 4;  // -4..3
  // Writer: the low 2 bits of q + 4 go to qs; its bit 2 (set for q >= 0) to hmask,
  // value e setting bit e/32 of byte e%32.
  for (int e = 0; e < 256; ++e) {
    low[e] = (q[e] + 4) & 3;
    if (q[e] + 4 > 3) b.hmask[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
  }
  pack_crumbs(low, b.qs);
  // Writer: 16 6-bit scales, low nibbles in bytes 0..7 (low half, then high half),
  // top 2 bits of scale j at bits 2*(j/4) of byte 8 + j%4.
  for (int j = 0; j < 16; ++j) {
    const int l = test_scale6(j);
    b.scales[j % 8] |= static_cast<uint8_t>((l & 15) << (j < 8 ? 0 : 4));
    b.scales[8 + j % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
  }
  const auto y = decode(DType::Q3_K, &b);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.25f * (test_scale6(e / 16) - 32) * q[e]) << e;
  // By hand: scale 9 = low nibble from the high half of byte 1, top bits 4..5 of
  // byte 9; values 144..159 are group 0 of the second half, lanes 16..31.
  BlockQ3_K h{};
  h.d = kHalf;
  h.scales[1] = 0x70;  // scale 9 low nibble 7 (scale 1 low nibble 0)
  h.scales[9] = 0x20;  // scale 9 top bits 2 -> 7 | 32 = 39 -> 7 (scale 1 top bits 0 -> -32)
  h.qs[48] = 0x02;     // value 144: low bits 2
  h.hmask[16] = 0x10;  // value 144: high bit (bit 144/32 = 4 of byte 16) set -> q = 2
  const auto z = decode(DType::Q3_K, &h);
  EXPECT_EQ(z[144], 0.5f * 7 * 2);
  EXPECT_EQ(z[145], 0.5f * 7 * -4);   // no bits: q = -4
  EXPECT_EQ(z[16], 0.5f * -32 * -4);  // scale 1 = 0 - 32
}

TEST(QuantBlocks, Q4_KHandBuilt) {
  BlockQ4_K b{};
  b.d = kHalf;
  b.dmin = kQuarter;
  int q[256], sc[8], m[8];
  for (int e = 0; e < 256; ++e) q[e] = test_code(e, 16);
  for (int j = 0; j < 8; ++j) sc[j] = test_scale6(j), m[j] = test_min6(j);
  pack_nibbles(q, b.qs);
  pack_k4_scales(sc, m, b.scales);
  const auto y = decode(DType::Q4_K, &b);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f * sc[e / 32] * q[e] - 0.25f * m[e / 32]) << e;
  // By hand: sub-block 5 takes its scale from byte 9's low nibble plus bits 6..7 of
  // byte 1, its min from byte 9's high nibble plus bits 6..7 of byte 5.
  BlockQ4_K h{};
  h.d = kOne;
  h.dmin = kOne;
  h.scales[9] = 0x21;  // low nibbles: scale 1, min 2
  h.scales[1] = 0x80;  // scale top bits 2 -> 33 (sub-block 1's own scale stays 0)
  h.scales[5] = 0x40;  // min top bits 1 -> 18
  h.qs[64] = 0xA0;     // value 160 (chunk 2, second 32) = high nibble 10; value 128 = 0
  const auto z = decode(DType::Q4_K, &h);
  EXPECT_EQ(z[160], 33 * 10 - 18.0f);
  EXPECT_EQ(z[161], -18.0f);
  EXPECT_EQ(z[128], 0.0f);
  EXPECT_EQ(z[32], 0.0f);
}

TEST(QuantBlocks, Q5_KHandBuilt) {
  BlockQ5_K b{};
  b.d = kHalf;
  b.dmin = kQuarter;
  int q[256], sc[8], m[8];
  for (int e = 0; e < 256; ++e) q[e] = test_code(e, 32);
  for (int j = 0; j < 8; ++j) sc[j] = test_scale6(j), m[j] = test_min6(j);
  pack_nibbles(q, b.qs);
  pack_k4_scales(sc, m, b.scales);
  // Writer: the fifth bit of value e is bit e/32 of qh[e%32].
  for (int e = 0; e < 256; ++e)
    if (q[e] > 15) b.qh[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
  const auto y = decode(DType::Q5_K, &b);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f * sc[e / 32] * q[e] - 0.25f * m[e / 32]) << e;
  BlockQ5_K h{};  // the Q4_K hand example plus the fifth bit of value 160
  h.d = kOne;
  h.dmin = kOne;
  h.scales[9] = 0x21;
  h.scales[1] = 0x80;
  h.scales[5] = 0x40;
  h.qs[64] = 0xA0;
  h.qh[0] = 0x20;  // bit 5 = group 160/32
  const auto z = decode(DType::Q5_K, &h);
  EXPECT_EQ(z[160], 33 * 26 - 18.0f);
  EXPECT_EQ(z[0], 0.0f);
}

TEST(QuantBlocks, Q6_KHandBuilt) {
  BlockQ6_K b{};
  b.d = kQuarter;
  int q[256];  // stored codes 0..63 (value q - 32)
  for (int e = 0; e < 256; ++e) q[e] = test_code(e, 64);
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(test_scale6(s) - 40);  // signed scales
  // Writer: per 128-value half, ql[l] = values l (low) and l+64 (high), ql[l+32] =
  // values l+32 and l+96; qh[l] = top 2 bits of values l, l+32, l+64, l+96.
  for (int half = 0; half < 2; ++half)
    for (int l = 0; l < 32; ++l) {
      const int* v = q + 128 * half + l;
      b.ql[64 * half + l] = static_cast<uint8_t>((v[0] & 15) | ((v[64] & 15) << 4));
      b.ql[64 * half + l + 32] = static_cast<uint8_t>((v[32] & 15) | ((v[96] & 15) << 4));
      b.qh[32 * half + l] =
          static_cast<uint8_t>((v[0] >> 4) | ((v[32] >> 4) << 2) | ((v[64] >> 4) << 4) | ((v[96] >> 4) << 6));
    }
  const auto y = decode(DType::Q6_K, &b);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.25f * b.scales[e / 16] * (q[e] - 32)) << e;
  // By hand: value 160 is group 1 of the second half, lane 0: low nibble of ql[96],
  // bits 2..3 of qh[32]; value 224 (group 3) is ql[96]'s high nibble, bits 6..7.
  BlockQ6_K h{};
  h.d = kHalf;
  h.scales[10] = -3;
  h.scales[14] = 2;
  h.ql[96] = 0xF5;
  h.qh[32] = 0x0C;
  const auto z = decode(DType::Q6_K, &h);
  EXPECT_EQ(z[160], 0.5f * -3 * (53 - 32));
  EXPECT_EQ(z[224], 0.5f * 2 * (15 - 32));
  EXPECT_EQ(z[161], 0.5f * -3 * -32);
}

// ------------------------------------------------------------------ quantizers vs llama.cpp

// Hand-computed quantizer outputs pin the byte layout from the writer's side.
TEST(QuantBlocks, Q4_0QuantizeHandComputed) {
  float x[32];
  for (int e = 0; e < 32; ++e) x[e] = static_cast<float>(e - 16);
  BlockQ4_0 b{};
  quantize_q4_0(x, &b, 32);
  // -16 is the largest magnitude: d = -16 / -8 = 2, q = int(x / 2 + 8.5) = int(e / 2 + 0.5).
  EXPECT_EQ(b.d, 0x4000);  // f16 2.0
  EXPECT_EQ(b.qs[0], 0x80);   // q[0] = 0 low, q[16] = 8 high
  EXPECT_EQ(b.qs[1], 0x91);   // q[1] = 1, q[17] = 9
  EXPECT_EQ(b.qs[15], 0xF8);  // q[15] = 8, q[31] = min(15, 16)
}

// Integer-valued sub-blocks spanning 0..qmax are fitted exactly (scale 1, min 0),
// so the packed codes are the inputs themselves: Q2_K's crumbs, Q4_K's nibbles and
// Q5_K's fifth bits can be checked against the layout description.
TEST(QuantBlocks, KQuantizeHandComputed) {
  float x[256];
  int q2[256], q4[256], q5[256];
  for (int e = 0; e < 256; ++e) q2[e] = (e * 3 + e / 16) % 4;
  for (int e = 0; e < 256; ++e) x[e] = static_cast<float>(q2[e]);
  BlockQ2_K b2{};
  quantize_q2_k(x, &b2, 256);
  EXPECT_EQ(b2.d, f32_to_f16(1 / 15.f));  // scales 1 on a 4-bit grid against max 1
  EXPECT_EQ(b2.dmin, 0);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b2.scales[j], 0x0F) << j;
  uint8_t qs[128];
  pack_crumbs(q2, qs);
  EXPECT_EQ(std::memcmp(qs, b2.qs, 64), 0);

  for (int e = 0; e < 256; ++e) q4[e] = (e * 7 + e / 32) % 16;
  for (int e = 0; e < 256; ++e) x[e] = static_cast<float>(q4[e]);
  BlockQ4_K b4{};
  quantize_q4_k(x, &b4, 256);
  EXPECT_EQ(b4.d, f32_to_f16(1 / 63.f));
  EXPECT_EQ(b4.dmin, 0);
  const uint8_t k4_scales[12] = {255, 255, 255, 255, 0, 0, 0, 0, 15, 15, 15, 15};  // sc 63, m 0 (by hand)
  EXPECT_EQ(std::memcmp(b4.scales, k4_scales, 12), 0);
  pack_nibbles(q4, qs);
  EXPECT_EQ(std::memcmp(qs, b4.qs, 128), 0);

  for (int e = 0; e < 256; ++e) q5[e] = (e * 7 + e / 32) % 32;
  for (int e = 0; e < 256; ++e) x[e] = static_cast<float>(q5[e]);
  BlockQ5_K b5{};
  quantize_q5_k(x, &b5, 256);
  EXPECT_EQ(b5.d, f32_to_f16(1 / 63.f));
  EXPECT_EQ(std::memcmp(b5.scales, k4_scales, 12), 0);
  pack_nibbles(q5, qs);
  EXPECT_EQ(std::memcmp(qs, b5.qs, 128), 0);
  for (int e = 0; e < 256; ++e) EXPECT_EQ((b5.qh[e % 32] >> (e / 32)) & 1, q5[e] >> 4) << e;
}

std::vector<uint8_t> read_fixture(const std::string& name) {
  const std::string path = std::string(SHRINK_SOURCE_DIR) + "/tests/data/ggml_quant/" + name;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  EXPECT_TRUE(f) << "missing fixture " << path << " (scripts/make_ggml_quant_fixtures.py writes it)";
  std::vector<uint8_t> v;
  if (!f) return v;
  uint8_t buf[4096];
  for (size_t k; (k = std::fread(buf, 1, sizeof buf, f)) > 0;) v.insert(v.end(), buf, buf + k);
  std::fclose(f);
  return v;
}

std::vector<float> read_f32_fixture(const std::string& name) {
  const std::vector<uint8_t> b = read_fixture(name);
  std::vector<float> v(b.size() / 4);
  if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

constexpr int64_t kFixtureRow = 512;  // n_per_row of tests/data/ggml_quant (manifest.txt)
const std::pair<DType, const char*> kFixtureTypes[] = {
    {DType::Q4_0, "q4_0"}, {DType::Q4_1, "q4_1"}, {DType::Q5_0, "q5_0"}, {DType::Q5_1, "q5_1"},
    {DType::Q8_0, "q8_0"}, {DType::Q2_K, "q2_k"}, {DType::Q3_K, "q3_k"}, {DType::Q4_K, "q4_k"},
    {DType::Q5_K, "q5_k"}, {DType::Q6_K, "q6_k"}, {DType::IQ4_NL, "iq4_nl"}};

// Every block scale passes through f16: the conversion must round like ggml's
// GGML_FP32_TO_FP16 (round to nearest even, subnormals, overflow to inf).
TEST(QuantBlocks, F16RoundingMatchesGgml) {
  const std::vector<float> in = read_f32_fixture("f16_in.f32");
  const std::vector<uint8_t> out = read_fixture("f16_out.u16");
  ASSERT_EQ(out.size(), in.size() * 2);
  ASSERT_GT(in.size(), 1000u);
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t want = static_cast<uint16_t>(out[2 * i] | (out[2 * i + 1] << 8));
    ASSERT_EQ(f32_to_f16(in[i]), want) << i << ": " << in[i];
  }
}

// The decisive check: shrink's quantizers write exactly the bytes of llama.cpp's
// ggml_quantize_chunk (0ad4a86, scripts/make_ggml_quant_fixtures.py) for 14 rows of
// 512 values (gaussian, outliers, all-positive, zero and constant blocks, tiny and
// huge magnitudes, values on a grid...), without and with an importance vector.
TEST(QuantBlocks, QuantizersMatchGgmlByteForByte) {
  const std::vector<float> x = read_f32_fixture("input.f32");
  const std::vector<float> imatrix = read_f32_fixture("imatrix.f32");
  ASSERT_EQ(imatrix.size(), static_cast<size_t>(kFixtureRow));
  ASSERT_EQ(x.size() % kFixtureRow, 0u);
  const int64_t rows = static_cast<int64_t>(x.size()) / kFixtureRow;
  for (const auto& [t, name] : kFixtureTypes) {
    ASSERT_TRUE(has_block_quantizer(t)) << name;
    const int64_t row_bytes = dtype_bytes(t, kFixtureRow), bb = dtype_traits(t).block_bytes;
    for (const bool imat : {false, true}) {
      const std::vector<uint8_t> want = read_fixture(std::string(name) + (imat ? ".imat.bin" : ".bin"));
      ASSERT_EQ(static_cast<int64_t>(want.size()), rows * row_bytes) << name;
      std::vector<uint8_t> got(want.size(), 0xAA);
      quantize_rows(t, x.data(), got.data(), rows, kFixtureRow, imat ? imatrix.data() : nullptr);
      int bad = 0;
      for (int64_t b = 0; b < static_cast<int64_t>(got.size()) / bb; ++b)
        if (std::memcmp(&got[b * bb], &want[b * bb], bb) != 0 && bad++ < 3)
          ADD_FAILURE() << name << (imat ? " imatrix" : "") << ": block " << b << " (row " << b * bb / row_bytes
                        << ") differs from ggml's";
      EXPECT_EQ(bad, 0) << name << (imat ? " imatrix" : "") << ": " << bad << " of " << got.size() / bb
                        << " blocks differ";
      // One row at a time through quantize_row gives the same bytes.
      std::vector<uint8_t> row(row_bytes);
      quantize_row(t, x.data() + 6 * kFixtureRow, row.data(), kFixtureRow, imat ? imatrix.data() : nullptr);
      EXPECT_EQ(std::memcmp(row.data(), &want[6 * row_bytes], row_bytes), 0) << name;
    }
  }
}

TEST(QuantBlocks, QuantizersRejectPartialBlocks) {
  std::vector<float> x(300, 1.0f);
  std::vector<uint8_t> out(1024);
  EXPECT_THROW(quantize_row(DType::Q4_K, x.data(), out.data(), 288), Error);  // not a multiple of 256
  EXPECT_THROW(quantize_row(DType::Q4_0, x.data(), out.data(), 48), Error);   // not a multiple of 32
  EXPECT_THROW(quantize_rows(DType::Q6_K, x.data(), out.data(), 1, 128), Error);
  EXPECT_THROW(quantize_row(DType::F16, x.data(), out.data(), 32), Error);    // not a block type
  EXPECT_EQ(dtype_traits(DType::IQ4_NL).block_bytes, 18);
  EXPECT_EQ(parse_dtype("IQ4_NL"), DType::IQ4_NL);
}

// ------------------------------------------------------------------ grid

// Every grid type: blocks from ggml (fixtures) and from quantizing random data read
// back as scale * q + offset give dequantize's values bit for bit; set_codes after
// get_codes rewrites the same bytes; new codes change only the code bits.
TEST(QuantBlocks, BlockGridReproducesDequantize) {
  const std::vector<float> x = read_f32_fixture("input.f32");
  std::mt19937 rng(11);
  for (const auto& [t, name] : kFixtureTypes) {
    if (!has_block_grid(t)) {
      EXPECT_EQ(t, DType::IQ4_NL);
      continue;
    }
    const int be = static_cast<int>(dtype_traits(t).block_elems), bb = static_cast<int>(dtype_traits(t).block_bytes);
    std::vector<uint8_t> blocks = read_fixture(std::string(name) + ".imat.bin");
    const std::vector<uint8_t> ref = read_fixture(std::string(name) + ".bin");
    blocks.insert(blocks.end(), ref.begin(), ref.end());
    const int nb = static_cast<int>(blocks.size()) / bb;
    ASSERT_GT(nb, 0) << name;
    std::vector<float> y(be), z(be);
    std::vector<uint8_t> q(be), q2(be), copy(bb);
    for (int b = 0; b < nb; ++b) {
      uint8_t* blk = &blocks[static_cast<size_t>(b) * bb];
      BlockGrid g;
      block_grid(t, blk, &g);
      ASSERT_EQ(g.sub_blocks * g.sub_len, be) << name;
      block_get_codes(t, blk, q.data());
      dequantize_row(t, blk, y.data(), be);
      for (int e = 0; e < be; ++e) {
        ASSERT_LE(q[e], g.qmax) << name;
        ASSERT_EQ(grid_value(g, e, q[e]), y[e]) << name << " block " << b << " element " << e;
      }
      std::memcpy(copy.data(), blk, bb);
      block_set_codes(t, copy.data(), q.data());
      ASSERT_EQ(std::memcmp(copy.data(), blk, bb), 0) << name << " block " << b;
      // Random codes: the header stays (same grid) and dequantize follows the grid.
      for (int e = 0; e < be; ++e) q2[e] = static_cast<uint8_t>(rng() % (g.qmax + 1));
      block_set_codes(t, copy.data(), q2.data());
      BlockGrid g2;
      block_grid(t, copy.data(), &g2);
      ASSERT_EQ(std::memcmp(g.scale, g2.scale, sizeof g.scale), 0) << name;
      ASSERT_EQ(std::memcmp(g.offset, g2.offset, sizeof g.offset), 0) << name;
      dequantize_row(t, copy.data(), z.data(), be);
      block_get_codes(t, copy.data(), q.data());
      for (int e = 0; e < be; ++e) {
        ASSERT_EQ(q[e], q2[e]) << name << " element " << e;
        ASSERT_EQ(grid_value(g, e, q2[e]), z[e]) << name << " element " << e;
      }
    }
    // The nearest code of a dequantized value is its own code (unless the scale is 0).
    std::vector<uint8_t> own(bb);
    quantize_row(t, x.data(), own.data(), be);
    BlockGrid g;
    block_grid(t, own.data(), &g);
    block_get_codes(t, own.data(), q.data());
    dequantize_row(t, own.data(), y.data(), be);
    for (int e = 0; e < be; ++e) {
      if (g.scale[e / g.sub_len] != 0) {
        EXPECT_EQ(grid_code(g, e, y[e]), q[e]) << name << " " << e;
      }
    }
  }
  BlockGrid g;
  const std::vector<uint8_t> iq(18);
  EXPECT_THROW(block_grid(DType::IQ4_NL, iq.data(), &g), Error);
  const uint8_t bad[32] = {16};
  std::vector<uint8_t> blk(18);
  EXPECT_THROW(block_set_codes(DType::Q4_0, blk.data(), bad), Error);  // code above qmax
}

// ------------------------------------------------------------------ real files

const char* kTeacherDir = "models/teacher-9M/gguf/";

double rel_rms(const Tensor& ref, const Tensor& got) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double r = ref.f32()[i], d = got.f32()[i] - r;
    num += d * d;
    den += r * r;
  }
  return std::sqrt(num / den);
}

// Loads a quantized teacher file through load_model (block-quantized tensors
// stay in their blocks; dequantized here) and returns, per ggml type, the largest relative RMS error of its tensors
// against the F32 file.
std::map<std::string, double> worst_error_by_type(const std::string& f32_path, const std::string& q_path) {
  const ModelFile a = load_model(f32_path), b = load_model(q_path);
  const GgufFile g = read_gguf(q_path);
  EXPECT_EQ(a.tensors.size(), b.tensors.size());
  std::map<std::string, double> worst;
  for (const GgufTensorInfo& info : g.tensors) {
    const Tensor& t = a.get(info.name);
    const Tensor u = b.get(info.name).to(DType::F32);
    EXPECT_EQ(u.shape, t.shape) << info.name;
    if (u.dtype != DType::F32 || u.shape != t.shape) continue;
    double& w = worst[ggml_type_name(info.type)];
    w = std::max(w, rel_rms(t, u));
  }
  return worst;
}

// Bounds sit ~20-40% above the measured worst tensor (Q8_0 0.54%, Q6_K 1.80%,
// Q4_K 7.18%, Q4_0 8.70%): a misread bit layout gives errors near 100%.
TEST(GgufReal, QuantizedFilesCloseToF32) {
  const std::string dir = kTeacherDir;
  SHRINK_REQUIRE_ASSET(f32, dir + "model-f32.gguf");
  const std::map<std::string, double> bound = {
      {"F32", 0.0}, {"Q8_0", 0.0075}, {"Q6_K", 0.025}, {"Q4_K", 0.09}, {"Q4_0", 0.105}};
  // llama-quantize mixes types: Q4_0 keeps output.weight in Q6_K; Q4_K_M puts
  // some attn_v / ffn_down in Q6_K; 1-D norms stay F32.
  const std::pair<const char*, std::vector<std::string>> files[] = {
      {"model-q8_0.gguf", {"F32", "Q8_0"}},
      {"model-q4_0.gguf", {"F32", "Q4_0", "Q6_K"}},
      {"model-q4_k_m.gguf", {"F32", "Q4_K", "Q6_K"}},
  };
  for (const auto& [name, types] : files) {
    SHRINK_REQUIRE_ASSET(q, dir + name);
    const auto worst = worst_error_by_type(f32, q);
    std::vector<std::string> seen;
    for (const auto& [type, e] : worst) {
      seen.push_back(type);
      ASSERT_TRUE(bound.count(type)) << name << ": unexpected type " << type;
      EXPECT_LE(e, bound.at(type)) << name << " " << type;
    }
    EXPECT_EQ(seen, types) << name;
  }
}

// shrink's quantizers reproduce llama-quantize's blocks byte for byte for every
// block tensor of the three files (Q8_0, Q4_0, and Q4_K/Q6_K of Q4_K_M; no
// importance matrix, so ggml's quantize_row_*_ref): the weights shrink evaluates
// for those files are exactly llama.cpp's, and shrink writes the same files.
TEST(GgufReal, QuantizersReproduceLlamaQuantize) {
  const std::string dir = kTeacherDir;
  SHRINK_REQUIRE_ASSET(f32, dir + "model-f32.gguf");
  const GgufFile src = read_gguf(f32);
  for (const char* name : {"model-q8_0.gguf", "model-q4_0.gguf", "model-q4_k_m.gguf"}) {
    SHRINK_REQUIRE_ASSET(path, dir + name);
    const GgufFile q = read_gguf(path);
    int checked = 0, blocks = 0;
    std::map<std::string, int> by_type;
    for (const GgufTensorInfo& info : q.tensors) {
      if (info.type == ggml_type::F32) continue;
      DType dt{};
      ASSERT_TRUE(ggml_to_dtype(info.type, &dt) && has_block_quantizer(dt)) << name << " " << info.name;
      const GgufTensorInfo* s = src.find_tensor(info.name);
      ASSERT_TRUE(s && s->type == ggml_type::F32) << info.name;
      std::vector<uint8_t> ours(info.nbytes);
      const int64_t n = static_cast<int64_t>(s->nbytes / 4);
      quantize_row(dt, reinterpret_cast<const float*>(src.tensor_data(*s)), ours.data(), n);
      EXPECT_EQ(std::memcmp(ours.data(), q.tensor_data(info), info.nbytes), 0) << name << " " << info.name;
      if (dt == DType::Q8_0 || dt == DType::Q4_0) {  // and through the Tensor conversion path
        convert_from_f32(dt, reinterpret_cast<const float*>(src.tensor_data(*s)), ours.data(), n);
        EXPECT_EQ(std::memcmp(ours.data(), q.tensor_data(info), info.nbytes), 0) << name << " " << info.name;
      }
      ++checked;
      ++by_type[std::string(dtype_name(dt))];
      blocks += static_cast<int>(n / dtype_traits(dt).block_elems);
    }
    std::printf("%-18s %d tensors, %d blocks identical to llama-quantize's:", name, checked, blocks);
    for (const auto& [t, c] : by_type) std::printf(" %s x%d", t.c_str(), c);
    std::printf("\n");
    EXPECT_EQ(checked, 2 + 8 * 7) << name;  // token_embd, output, 7 matrices in each of 8 layers
  }
}

// The decisive check: perplexity through shrink's runtime (weights dequantized to
// f32, f32 activations) against llama.cpp's figures (README of teacher-9M:
// llama-perplexity -c 256 --chunks 40 on gutenberg/valid.txt; F32 37.9103).
// llama.cpp quantizes activations to Q8_0/Q8_K in its dot products, so small
// differences are expected. Measured: Q8_0 37.9106 (llama.cpp 37.9170), Q4_K_M
// 37.9671 (37.9705), Q4_0 38.0657 (43.0978).
// Q4_0 is the exception: llama.cpp reports +13.7% over F32, shrink +0.41%,
// although the Q4_0 blocks are byte-identical to shrink's own (test above), the
// Q6_K output.weight is shared with Q4_K_M (which matches to 0.01%), and Q4_0's
// weight error (8.7% RMS) is close to Q4_K's (7.2%, +0.15% perplexity). The gap is
// in llama.cpp's Q4_0 compute path on the machine that made the figure, so for
// Q4_0 we check what the weights imply: a cost above zero and below 1% of F32.
TEST(GgufReal, QuantizedPerplexityNearLlamaCpp) {
  const std::string dir = kTeacherDir;
  SHRINK_REQUIRE_ASSET(text, "text/gutenberg/valid.txt");
  struct Case {
    const char* file;
    double llama_cpp;
  };
  // Q8_0 and Q4_K_M: llama.cpp c392e509's recorded figures (teacher-9M README).
  // Q4_0: the recorded 43.0978 is not reproduced by a second llama.cpp build
  // (0ad4a86, through node-llama-cpp 3.22.1: 38.0615 on the same file; see
  // docs/llamacpp-check.md), which agrees with us; our dequantization is also
  // checked block for block against llama-quantize's output above.
  const Case cases[] = {{"model-q8_0.gguf", 37.9170}, {"model-q4_k_m.gguf", 37.9705}, {"model-q4_0.gguf", 38.0615}};
  std::vector<int32_t> tokens;
  for (const Case& c : cases) {
    SHRINK_REQUIRE_ASSET(path, dir + c.file);
    ModelFile f = load_model(path, test::with_tokenizer());
    if (tokens.empty()) tokens = f.tokenizer->encode(read_text_file(text), true);
    Transformer m(f);
    eval::PerplexityOptions o;
    o.n_ctx = 256;
    o.chunks = 40;
    const double ppl = eval::perplexity(m, tokens, o).ppl;
    std::printf("%-18s shrink %.4f  llama.cpp %.4f  (%+.2f%%)\n", c.file, ppl, c.llama_cpp,
                100 * (ppl / c.llama_cpp - 1));
    EXPECT_NEAR(ppl, c.llama_cpp, c.llama_cpp * 0.01) << c.file;
  }
}
}  // namespace
}  // namespace shrink
