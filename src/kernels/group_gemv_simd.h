// Internal to kernels/group_gemv*.cpp: the per-call plan shared by the
// scalar, AVX2 and AVX-512 row kernels of group_gemv.h.
#pragma once
#include <cstdint>

#include "core/error.h"
#include "kernels/group_gemv.h"

namespace shrink::kernels::group_impl {

// Words per activation block of the int8 (q8) kernels, whatever the ISA.
constexpr int kQ8Words = 16;

// Lane order (group_gemv.h), f32 kernels: with L lanes, block b of a row
// holds words [b*L, b*L + L); column (w*per_word + k) of lane i = w - b*L sits
// at xa[b*L*per_word + k*L + i]. Columns past `cols` are zero.
//
// q8 kernels: x is rounded to int8 per block of kQ8Words words (scale dx =
// max|x| / 127 over the block). A byte of a word holds cpb = 8 / bits codes;
// sub-vector k (code k of every byte: a shift by bits*k and a byte mask) of
// block b pairs with the 64 bytes xq[(b*cpb + k)*64 ...], byte 4*i + j being
// the int8 x of column (b*16 + i)*per_word + j*cpb + k — so vpdpbusd's sum of
// 4 adjacent byte products stays within word i.
struct Plan {
  const GroupQuantView* w = nullptr;
  int lanes = 0;        // 16 (AVX-512), 8 (AVX2); 1 = natural order (scalar path)
  bool q8 = false;      // int8 activations (xq, dx, xsum = sum of dx * xq per group)
  int64_t blocks = 0;   // lane blocks per row (for the tables below)
  int64_t xa_cols = 0;  // f32: blocks * lanes * per_word
  const float* xa = nullptr;    // f32: n x xa_cols, x in lane order
  const float* xsum = nullptr;  // n x n_groups: sum of x (q8: of dx * xq) over each group
  // Per lane block: the first group its words touch, how many, and each lane's group minus the first.
  const int32_t* g0 = nullptr;
  const int32_t* ng = nullptr;
  const int32_t* lane_group = nullptr;  // blocks x lanes: the group of the word's first code
  // Words that straddle two groups (int3/int5/int6 codes, 10/6/5 per word, in groups of 32/64/128):
  // `split` is set when some word does. Then per lane, the group of the word's last code (minus
  // the first) and the index of its first code in that group (per_word where the word lies in one
  // group); the f32 kernels sum codes k < lane_split and k >= lane_split apart and scale each sum
  // by its own group's scale.
  bool split = false;
  const int32_t* lane_group2 = nullptr;  // blocks x lanes
  const int32_t* lane_split = nullptr;   // blocks x lanes
  // q8
  int64_t q8_blocks = 0;         // ceil(words_per_row / kQ8Words)
  int64_t xq_stride = 0;         // bytes per input: q8_blocks * cpb * 64
  const int8_t* xq = nullptr;    // n x xq_stride
  const float* dx = nullptr;     // n x q8_blocks
  int64_t n = 1;
};

// y[t * ldy + r] for r in [r0, r1), t < plan.n. Single-threaded.
using RowsFn = void (*)(const Plan&, int64_t r0, int64_t r1, float* y, int64_t ldy);
// Rows [r0, r1) dequantized in lane order: out[(r - r0) * xa_cols + j] pairs with xa[j].
using DequantFn = void (*)(const Plan&, int64_t r0, int64_t r1, float* out);

void rows_avx512(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy);
void rows_avx2(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy);
void rows_q8_avx512(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy);  // needs AVX512-VNNI
void rows_q8_avx2(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy);
void dequant_avx512(const Plan& p, int64_t r0, int64_t r1, float* out);
void dequant_avx2(const Plan& p, int64_t r0, int64_t r1, float* out);

// f.template operator()<bits, codebook, split>() for a view: the one switch
// from a view to the template instance of an ISA's row or dequantization
// kernel (f is a generic lambda in that ISA's entry point).
template <typename F>
void by_bits(const Plan& p, F&& f) {
  const bool lut = p.w->levels != nullptr;
  const auto go = [&]<int B, bool LUT>() {
    p.split ? f.template operator()<B, LUT, true>() : f.template operator()<B, LUT, false>();
  };
  switch (p.w->bits) {
    case 2: return go.template operator()<2, false>();
    case 3: return go.template operator()<3, false>();
    case 4: return lut ? go.template operator()<4, true>() : go.template operator()<4, false>();
    case 5: return go.template operator()<5, false>();
    case 6: return go.template operator()<6, false>();
    case 7: return go.template operator()<7, false>();
    case 8: return go.template operator()<8, false>();
    default: fail("group kernel: unsupported bits ", p.w->bits);
  }
}

// sum_g scale[g] * zero[g] * xsum[g] over n_groups, double-accumulated (the
// scalar paths; the SIMD files have f32 vector versions).
float zero_correction(const float* scale, const float* zero, const float* xsum, int64_t n_groups);

}  // namespace shrink::kernels::group_impl
