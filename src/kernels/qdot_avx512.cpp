// AVX-512 VNNI kernels of the quantized dot products (only called when the
// CPU reports AVX-512F/BW/VL + AVX512_VNNI + FMA/F16C; see qdot.cpp). Integer
// products are exact: 32-value blocks use vpdpbusd (u8 weight codes x s8
// activation codes, 4 products summed into each int32 lane); K-quants use
// vpmaddubsw (pairs into int16, no saturation possible for codes < 64) and
// vpdpwssd to apply the 6/8-bit sub-block scales. Per-block f32 scaling as
// ggml's vec_dot (ggml/src/ggml-cpu/arch/x86/quants.c was read for ideas:
// offsetting unsigned codes through the activation sums, bsums for the K-quant
// mins); the code is our own.
//
// Q4_0 does not rearrange its weights at all: the activation is laid out once
// per call to match the raw bytes (Q40Wide). Q3_K, Q4_K/Q5_K decode their
// packed 6-bit scales in 64-bit scalar code, off the vector ports.
//
// Like gemv_avx512.cpp, R rows from R distant parts of W are computed together
// (R independent DRAM streams, each prefetched ahead), and the activation
// chunk is loaded/rearranged once for all R rows. Every row's arithmetic is
// the same whatever R is, so results do not depend on the thread count.
//
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever such an intrinsic is inlined (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "kernels/qdot.h"
#include "kernels/row_slabs.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")))
#define SHRINK_AVX512_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c"), always_inline)) inline

namespace shrink::kernels {

namespace {

// Rows per group and the slab size above which 8 streams are used where the wide walk pays
// (walks_wide, row_slabs.h; as gemv_avx512.cpp).
constexpr int kRowsCached = 4;
constexpr int kRowsStreamed = 8;
constexpr int64_t kStreamedMinBytes = int64_t{2} << 20;

SHRINK_AVX512_INLINE uint16_t u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
SHRINK_AVX512_INLINE uint32_t u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
SHRINK_AVX512_INLINE __m128i load128(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
SHRINK_AVX512_INLINE __m256i load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// 16 bytes from each of p, p + s, p + 2s, p + 3s in the four 128-bit lanes.
SHRINK_AVX512_INLINE __m512i lanes4(const uint8_t* p, int64_t s) {
  __m512i v = _mm512_castsi128_si512(load128(p));
  v = _mm512_inserti32x4(v, load128(p + s), 1);
  v = _mm512_inserti32x4(v, load128(p + 2 * s), 2);
  return _mm512_inserti32x4(v, load128(p + 3 * s), 3);
}

// The f16 at p, p + s, p + 2s, p + 3s as 4 floats.
SHRINK_AVX512_INLINE __m128 f16x4(const uint8_t* p, int64_t s) {
  const uint64_t v = uint64_t{u16(p)} | uint64_t{u16(p + s)} << 16 | uint64_t{u16(p + 2 * s)} << 32 |
                     uint64_t{u16(p + 3 * s)} << 48;
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(v)));
}

// ---------------------------------------------------------------------------
// 32-value blocks: a chunk is 4 blocks, block k in 128-bit lane k; codes
// 0..15 of every block in one vector ("lo"), 16..31 in another ("hi"), which
// is how Q4/Q5 nibbles unpack. Activation codes are laid out the same way.

template <bool kQ8_1>
struct Act32 {
  static constexpr int64_t kBytes = kQ8_1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
  static constexpr int64_t kQs = kQ8_1 ? 4 : 2;  // offset of qs
};

struct X32 {
  __m512i ylo, yhi;
  __m512i base;  // -offset * (activation code sums), 4 partial sums per block
  __m128 dy, sy;  // activation d (and s for Q8_1) of the 4 blocks
};

// Weight types of 32 values: how to unpack 4 blocks to unsigned codes and
// what offset makes them signed (q - offset).
template <DType T>
struct W32;
template <>
struct W32<DType::Q8_0> {
  static constexpr int64_t kBytes = sizeof(BlockQ8_0);
  static constexpr int kOffsetLog2 = 7;  // signed codes + 128 are unsigned
  static constexpr bool kMin = false, kQ8_1 = false;
  SHRINK_AVX512_INLINE static void codes(const uint8_t* p, __m512i& lo, __m512i& hi) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    lo = _mm512_xor_si512(lanes4(p + 2, kBytes), flip);
    hi = _mm512_xor_si512(lanes4(p + 18, kBytes), flip);
  }
};
SHRINK_AVX512_INLINE void nibbles(__m512i v, __m512i& lo, __m512i& hi) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  lo = _mm512_and_si512(v, m4);
  hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
}
// The fifth bits of 4 Q5 blocks (qh words at p, p + s, ...): bits 0..15 of
// each word select the lo codes of its lane, bits 16..31 the hi codes.
SHRINK_AVX512_INLINE void add_fifth_bit(const uint8_t* p, int64_t s, __m512i& lo, __m512i& hi) {
  const uint64_t h0 = u32(p), h1 = u32(p + s), h2 = u32(p + 2 * s), h3 = u32(p + 3 * s);
  const uint64_t mlo = (h0 & 0xFFFF) | (h1 & 0xFFFF) << 16 | (h2 & 0xFFFF) << 32 | (h3 & 0xFFFF) << 48;
  const uint64_t mhi = (h0 >> 16) | (h1 >> 16) << 16 | (h2 >> 16) << 32 | (h3 >> 16) << 48;
  const __m512i c16 = _mm512_set1_epi8(16);
  lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(mlo), lo, c16);
  hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(mhi), hi, c16);
}
template <>
struct W32<DType::Q4_0> {
  static constexpr int64_t kBytes = sizeof(BlockQ4_0);
  static constexpr int kOffsetLog2 = 3;
  static constexpr bool kMin = false, kQ8_1 = false;
  SHRINK_AVX512_INLINE static void codes(const uint8_t* p, __m512i& lo, __m512i& hi) {
    nibbles(lanes4(p + 2, kBytes), lo, hi);
  }
};
template <>
struct W32<DType::Q4_1> {
  static constexpr int64_t kBytes = sizeof(BlockQ4_1);
  static constexpr int kOffsetLog2 = -1;  // affine: no offset, a min instead
  static constexpr bool kMin = true, kQ8_1 = true;
  SHRINK_AVX512_INLINE static void codes(const uint8_t* p, __m512i& lo, __m512i& hi) {
    nibbles(lanes4(p + 4, kBytes), lo, hi);
  }
};
template <>
struct W32<DType::Q5_0> {
  static constexpr int64_t kBytes = sizeof(BlockQ5_0);
  static constexpr int kOffsetLog2 = 4;
  static constexpr bool kMin = false, kQ8_1 = false;
  SHRINK_AVX512_INLINE static void codes(const uint8_t* p, __m512i& lo, __m512i& hi) {
    nibbles(lanes4(p + 6, kBytes), lo, hi);
    add_fifth_bit(p + 2, kBytes, lo, hi);
  }
};
template <>
struct W32<DType::Q5_1> {
  static constexpr int64_t kBytes = sizeof(BlockQ5_1);
  static constexpr int kOffsetLog2 = -1;
  static constexpr bool kMin = true, kQ8_1 = true;
  SHRINK_AVX512_INLINE static void codes(const uint8_t* p, __m512i& lo, __m512i& hi) {
    nibbles(lanes4(p + 8, kBytes), lo, hi);
    add_fifth_bit(p + 4, kBytes, lo, hi);
  }
};

template <DType T>
struct K32 {
  using Wt = W32<T>;
  using A = Act32<Wt::kQ8_1>;
  static constexpr int kChunk = 4;
  static constexpr int64_t kBytes = Wt::kBytes, kActBytes = A::kBytes;
  using X = X32;
  struct Acc {
    __m512 f;
    __m128 m;
  };

  SHRINK_AVX512_INLINE static X prep(const uint8_t* a) {
    X x;
    x.ylo = lanes4(a + A::kQs, kActBytes);
    x.yhi = lanes4(a + A::kQs + 16, kActBytes);
    if constexpr (Wt::kOffsetLog2 >= 0) {
      const __m512i ones = _mm512_set1_epi8(1);
      const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, x.ylo), ones, x.yhi);
      x.base = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, Wt::kOffsetLog2));
    } else {
      x.base = _mm512_setzero_si512();
    }
    x.dy = f16x4(a, kActBytes);
    x.sy = Wt::kMin ? f16x4(a + 2, kActBytes) : _mm_setzero_ps();
    return x;
  }
  SHRINK_AVX512_INLINE static Acc zero() { return {_mm512_setzero_ps(), _mm_setzero_ps()}; }
  SHRINK_AVX512_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    __m512i lo, hi;
    Wt::codes(p, lo, hi);
    const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(x.base, lo, x.ylo), hi, x.yhi);
    // Block scale d_w * d_y, each broadcast to its block's 4 lanes.
    const __m128 d = _mm_mul_ps(f16x4(p, kBytes), x.dy);
    const __m512i expand = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512 d16 = _mm512_permutexvar_ps(expand, _mm512_castps128_ps512(d));
    acc.f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d16, acc.f);
    if constexpr (Wt::kMin) acc.m = _mm_fmadd_ps(f16x4(p + 2, kBytes), x.sy, acc.m);
  }
  SHRINK_AVX512_INLINE static float finish(const Acc& acc) {
    float r = _mm512_reduce_add_ps(acc.f);
    if constexpr (Wt::kMin) {
      __m128 m = _mm_add_ps(acc.m, _mm_movehl_ps(acc.m, acc.m));
      m = _mm_add_ss(m, _mm_movehdup_ps(m));
      r += _mm_cvtss_f32(m);
    }
    return r;
  }
};

// ---------------------------------------------------------------------------
// K-quants: a chunk is one 256-value super-block.

SHRINK_AVX512_INLINE __m512i pair256(const uint8_t* a, const uint8_t* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(load256(a)), load256(b), 1);
}

// 32 int16 lanes: lanes 0..15 = v16[i], lanes 16..31 = v16[j] (v16 = 16 int16 in a ymm).
SHRINK_AVX512_INLINE __m512i splat2(__m512i v16, int i, int j) {
  return _mm512_permutexvar_epi16(
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(i))), _mm256_set1_epi16(static_cast<short>(j)), 1),
      v16);
}

// Bytes 1 << i in the low 256 bits, 1 << j in the high 256 bits.
SHRINK_AVX512_INLINE __m512i bits(int i, int j) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(static_cast<char>(1 << i))),
                            _mm256_set1_epi8(static_cast<char>(1 << j)), 1);
}

// Q4_K / Q5_K. qs bytes 0..63 hold sub-blocks 0 and 2 (low nibbles) and 1
// and 3 (high nibbles), bytes 64..127 sub-blocks 4, 6 / 5, 7; the activation
// codes are rearranged once per chunk to match.
template <bool kQ5>
struct KQ45 {
  using Block = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = sizeof(Block), kActBytes = sizeof(BlockQ8_K);
  struct X {
    __m512i y[4];
    __m256i bs;  // int16 in the lanes of the mins in row()'s s16: bsums[2j] + bsums[2j+1], 0 elsewhere
    __m512 dy;
  };
  struct Acc {
    __m512 f;
    __m256 m;
  };
  SHRINK_AVX512_INLINE static X prep(const uint8_t* ap) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(ap);
    const auto* q = reinterpret_cast<const uint8_t*>(a->qs);
    X x;
    x.y[0] = pair256(q, q + 64);
    x.y[1] = pair256(q + 32, q + 96);
    x.y[2] = pair256(q + 128, q + 192);
    x.y[3] = pair256(q + 160, q + 224);
    const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a->bsums));
    const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a->bsums + 8));
    const __m128i pairs = _mm_hadd_epi16(b0, b1), zero = _mm_setzero_si128();
    x.bs = _mm256_set_m128i(_mm_unpackhi_epi64(zero, pairs), _mm_unpacklo_epi64(zero, pairs));
    x.dy = _mm512_set1_ps(a->d);
    return x;
  }
  SHRINK_AVX512_INLINE static Acc zero() { return {_mm512_setzero_ps(), _mm256_setzero_ps()}; }
  SHRINK_AVX512_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const auto* b = reinterpret_cast<const Block*>(p);
    // The 8 six-bit scales and mins (k4_scale_min) as int16 lanes sc0..3,
    // m0..3, sc4..7, m4..7, from two 64-bit words on the integer ports (GCC
    // turned the former 32-bit version into ~12 uops on the busy vector ports).
    uint64_t lo8;
    std::memcpy(&lo8, b->scales, 8);
    const uint64_t hi4 = u32(b->scales + 8);
    const uint64_t sm_lo = lo8 & 0x3f3f3f3f3f3f3f3full;
    const uint64_t sm_hi = ((hi4 | hi4 << 28) & 0x0f0f0f0f0f0f0f0full) | ((lo8 >> 2) & 0x3030303030303030ull);
    const __m256i s16 = _mm256_cvtepu8_epi16(
        _mm_insert_epi64(_mm_cvtsi64_si128(static_cast<long long>(sm_lo)), static_cast<long long>(sm_hi), 1));
    const __m512i s16z = _mm512_castsi256_si512(s16);

    const __m512i v0 = _mm512_loadu_si512(b->qs), v1 = _mm512_loadu_si512(b->qs + 64);
    __m512i l0, h0, l1, h1;
    nibbles(v0, l0, h0);
    nibbles(v1, l1, h1);
    if constexpr (kQ5) {
      // Sub-block s takes its fifth bit from bit s of qh[e % 32].
      const __m512i qh = _mm512_broadcast_i64x4(load256(b->qh));
      const __m512i c16 = _mm512_set1_epi8(16);
      l0 = _mm512_mask_add_epi8(l0, _mm512_test_epi8_mask(qh, bits(0, 2)), l0, c16);
      h0 = _mm512_mask_add_epi8(h0, _mm512_test_epi8_mask(qh, bits(1, 3)), h0, c16);
      l1 = _mm512_mask_add_epi8(l1, _mm512_test_epi8_mask(qh, bits(4, 6)), l1, c16);
      h1 = _mm512_mask_add_epi8(h1, _mm512_test_epi8_mask(qh, bits(5, 7)), h1, c16);
    }
    // Scale j is lane j (j < 4) or j + 4.
    __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(l0, x.y[0]), splat2(s16z, 0, 2));
    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(h0, x.y[1]), splat2(s16z, 1, 3));
    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(l1, x.y[2]), splat2(s16z, 8, 10));
    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(h1, x.y[3]), splat2(s16z, 9, 11));
    // d * d_y, dmin * d_y alternating (the f16 pair broadcast from memory).
    const __m512 dd = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi32(static_cast<int>(u32(p)))), x.dy);
    acc.f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_moveldup_ps(dd), acc.f);
    // Mins: sum_j m_j * (activation sum of sub-block j), scaled by dmin * d_y.
    const __m256i ms = _mm256_madd_epi16(s16, x.bs);
    acc.m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ms), _mm512_castps512_ps256(_mm512_movehdup_ps(dd)), acc.m);
  }
  SHRINK_AVX512_INLINE static float finish(const Acc& acc) {
    const __m256 m = acc.m;
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm512_reduce_add_ps(acc.f) - _mm_cvtss_f32(s);
  }
};

// Q6_K. Per 128-value half h: ql bytes 64h..64h+63 hold groups 0, 1 (low
// nibbles) and 2, 3 (high nibbles), i.e. activation codes 128h + 0..63 and
// 128h + 64..127 in order; the two high bits of group g are bits 2g, 2g+1 of
// qh[32h + l], moved to bits 4, 5 by per-64-bit-lane shifts (bits never
// cross into the masked positions from a neighbouring byte: shifts are < 8
// and only bits 4, 5 of each byte are kept).
struct KQ6 {
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = sizeof(BlockQ6_K), kActBytes = sizeof(BlockQ8_K);
  struct X {
    __m512i y[4];
    __m512i nbs;  // int16: -bsums in lanes 0..15, 0 above
    float d;
  };
  struct Acc {
    __m512 f;
  };
  SHRINK_AVX512_INLINE static X prep(const uint8_t* ap) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(ap);
    X x;
    for (int i = 0; i < 4; ++i) x.y[i] = _mm512_loadu_si512(a->qs + 64 * i);
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums));
    x.nbs = _mm512_castsi256_si512(_mm256_sub_epi16(_mm256_setzero_si256(), bs));
    x.nbs = _mm512_inserti64x4(x.nbs, _mm256_setzero_si256(), 1);
    x.d = a->d;
    return x;
  }
  SHRINK_AVX512_INLINE static Acc zero() { return {_mm512_setzero_ps()}; }
  SHRINK_AVX512_INLINE static __m512i splat4(__m512i v16, int i) {
    // int16 lanes 8k..8k+7 = v16[i + k] for k < 4.
    const __m512i idx = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(static_cast<short>(i + 1)), _mm_set1_epi16(static_cast<short>(i)))),
        _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(i + 3)), _mm_set1_epi16(static_cast<short>(i + 2))), 1);
    return _mm512_permutexvar_epi16(idx, v16);
  }
  SHRINK_AVX512_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), shr = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(load128(reinterpret_cast<const uint8_t*>(b->scales))));
    // The -32 offset of every code: sum_j sc_j * 32 * (-bsums_j).
    __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_slli_epi16(sc, 5), x.nbs);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(load256(b->qh + 32 * h));
      // (a & b) | c as a ternary-logic immediate.
      const __m512i lo = _mm512_ternarylogic_epi64(ql, m4, _mm512_and_si512(_mm512_sllv_epi64(qh, shl), m30), 0xEA);
      const __m512i hi = _mm512_ternarylogic_epi64(_mm512_srli_epi16(ql, 4), m4,
                                                   _mm512_and_si512(_mm512_srlv_epi64(qh, shr), m30), 0xEA);
      s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(lo, x.y[2 * h]), splat4(sc, 8 * h));
      s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(hi, x.y[2 * h + 1]), splat4(sc, 8 * h + 4));
    }
    const float d = _cvtsh_ss(b->d) * x.d;
    acc.f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d), acc.f);
  }
  SHRINK_AVX512_INLINE static float finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.f); }
};

// Q2_K. qs byte 32h + l holds the 2-bit codes of lane l of the four 32-value
// groups of half h (group g in bits 2g, 2g+1): shifting the 64 bytes right by
// 2g and masking gives [group g of half 0 | group g of half 1], matched by
// activation codes rearranged once per chunk. Scales: low nibble of
// scales[e/16]; mins (high nibble) against the activation's bsums.
struct KQ2 {
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = sizeof(BlockQ2_K), kActBytes = sizeof(BlockQ8_K);
  struct X {
    __m512i y[4];
    __m256i bs;
    float d;
  };
  struct Acc {
    __m512 f;
    __m256 m;
  };
  SHRINK_AVX512_INLINE static X prep(const uint8_t* ap) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(ap);
    const auto* q = reinterpret_cast<const uint8_t*>(a->qs);
    X x;
    for (int g = 0; g < 4; ++g) x.y[g] = pair256(q + 32 * g, q + 128 + 32 * g);
    x.bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums));
    x.d = a->d;
    return x;
  }
  SHRINK_AVX512_INLINE static Acc zero() { return {_mm512_setzero_ps(), _mm256_setzero_ps()}; }
  SHRINK_AVX512_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
    const __m128i sb = load128(b->scales);
    const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sb, _mm_set1_epi8(0x0F))));
    const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), _mm_set1_epi8(0x0F)));
    const __m512i v = _mm512_loadu_si512(b->qs), m3 = _mm512_set1_epi8(3);
    __m512i s = _mm512_setzero_si512();
    for (int g = 0; g < 4; ++g) {
      // int16 lanes 8k..8k+7 use scale 2g, 2g+1, 8+2g, 9+2g for k = 0..3.
      const __m512i idx = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(static_cast<short>(2 * g + 1)), _mm_set1_epi16(static_cast<short>(2 * g)))),
          _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(9 + 2 * g)), _mm_set1_epi16(static_cast<short>(8 + 2 * g))), 1);
      const __m512i c = _mm512_and_si512(_mm512_srli_epi16(v, 2 * g), m3);
      s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(c, x.y[g]), _mm512_permutexvar_epi16(idx, sc));
    }
    const float d = _cvtsh_ss(b->d) * x.d, dmin = _cvtsh_ss(b->dmin) * x.d;
    acc.f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d), acc.f);
    acc.m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(mn, x.bs)), _mm256_set1_ps(dmin), acc.m);
  }
  SHRINK_AVX512_INLINE static float finish(const Acc& acc) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc.m), _mm256_extractf128_ps(acc.m, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm512_reduce_add_ps(acc.f) - _mm_cvtss_f32(s);
  }
};

// The 16 Q3_K scales (q3_k_scale(j) - 32) as int16, decoded in 64-bit scalar
// arithmetic on the otherwise idle integer ports (measured faster than a
// shuffle decode on the vector ports): low nibbles are bytes 0..7 (scales
// 0..7) and their high nibbles (8..15); the top 2 bits of scale 4k + i are
// bits 2k, 2k+1 of byte 8 + i.
SHRINK_AVX512_INLINE __m256i q3k_scales(const uint8_t* p) {
  uint64_t lo8;
  std::memcpy(&lo8, p, 8);
  const uint64_t hi4 = u32(p + 8);
  const uint64_t top01 = (hi4 | hi4 << 30) & 0x0303030303030303ull;       // scales 0..7
  const uint64_t top23 = (hi4 >> 4 | hi4 << 26) & 0x0303030303030303ull;  // scales 8..15
  const uint64_t s0 = (lo8 & 0x0f0f0f0f0f0f0f0full) | top01 << 4, s1 = ((lo8 >> 4) & 0x0f0f0f0f0f0f0f0full) | top23 << 4;
  const __m128i u = _mm_insert_epi64(_mm_cvtsi64_si128(static_cast<long long>(s0)), static_cast<long long>(s1), 1);
  return _mm256_sub_epi16(_mm256_cvtepu8_epi16(u), _mm256_set1_epi16(32));
}

// Q3_K. The 2-bit codes are laid out as Q2_K's (same activation
// rearrangement); the high bit of group g of half h is bit 4h + g of
// hmask[l]. Codes are made unsigned, u = crumb + 4 * hbit = q + 4 (0..7), and
// the offset is taken back through the activation sums:
// sum_j sc_j * (sum u*y - 4 * bsums_j).
struct KQ3 {
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = sizeof(BlockQ3_K), kActBytes = sizeof(BlockQ8_K);
  struct X {
    __m512i y[4];
    __m512i nbs;  // int16: -4 * bsums in lanes 0..15, 0 above
    __m512 dy;
  };
  struct Acc {
    __m512 f;
  };
  SHRINK_AVX512_INLINE static X prep(const uint8_t* ap) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(ap);
    const auto* q = reinterpret_cast<const uint8_t*>(a->qs);
    X x;
    for (int g = 0; g < 4; ++g) x.y[g] = pair256(q + 32 * g, q + 128 + 32 * g);
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums));
    x.nbs = _mm512_castsi256_si512(_mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(bs, 2)));
    x.nbs = _mm512_inserti64x4(x.nbs, _mm256_setzero_si256(), 1);
    x.dy = _mm512_set1_ps(a->d);
    return x;
  }
  SHRINK_AVX512_INLINE static Acc zero() { return {_mm512_setzero_ps()}; }
  SHRINK_AVX512_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
    const __m512i sc = _mm512_zextsi256_si512(q3k_scales(b->scales));
    const __m512i v = _mm512_loadu_si512(b->qs), m3 = _mm512_set1_epi8(3), c4 = _mm512_set1_epi8(4);
    const __m512i hm = _mm512_broadcast_i64x4(load256(b->hmask));
    __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), sc, x.nbs);
    for (int g = 0; g < 4; ++g) {
      // int16 lanes 8k..8k+7 use scale 2g, 2g+1, 8+2g, 9+2g for k = 0..3.
      const __m512i idx = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(static_cast<short>(2 * g + 1)), _mm_set1_epi16(static_cast<short>(2 * g)))),
          _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(9 + 2 * g)), _mm_set1_epi16(static_cast<short>(8 + 2 * g))), 1);
      __m512i c = _mm512_and_si512(_mm512_srli_epi16(v, 2 * g), m3);
      c = _mm512_mask_add_epi8(c, _mm512_test_epi8_mask(hm, bits(g, 4 + g)), c, c4);
      s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(c, x.y[g]), _mm512_permutexvar_epi16(idx, sc));
    }
    // d * d_y in the odd lanes: the dword ending with d (bytes 106..109) broadcast from memory.
    const __m512 dd = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi32(static_cast<int>(u32(p + 106)))), x.dy);
    acc.f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_movehdup_ps(dd), acc.f);
  }
  SHRINK_AVX512_INLINE static float finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.f); }
};

// Q4_0, 16 blocks (288 bytes, 512 values) per step without rearranging the
// weights: the step is four 64-byte loads and one 32-byte load, split into
// nibbles as they are, and the activation codes are rearranged once per call
// (build) to sit at the byte positions of the codes they multiply, zero at the
// f16 scale bytes. Every dword lane then holds codes of one block only (a
// block is 18 bytes from an even offset: a dword either lies inside it or
// pairs its last two code bytes with the next block's zero-weighted scale),
// so vpdpbusd gives per-block partial sums and each lane is scaled by its
// block's d_w * d_y (16 scales gathered from four loads and one word
// permute, spread to the lanes by a float permute). Blocks after the last
// full step use K32<Q4_0> on a copy of their activation blocks kept after the
// steps (Tail).
struct Q40Wide {
  static constexpr int kChunk = 16;
  static constexpr int64_t kBytes = sizeof(BlockQ4_0);
  static constexpr int64_t kStepBytes = kChunk * kBytes;  // 288
  struct alignas(64) Step {
    int8_t lo[320], hi[320];  // activation code for the low / high nibble of each weight byte
    int32_t base[80];         // -8 * (sum of lo and hi codes) per dword: the offset of q - 8
    float dy[16];
  };
  static_assert(sizeof(Step) == 1024);
  // dot_rows walks Steps as if they were kChunk activation blocks of kActBytes.
  static constexpr int64_t kActBytes = sizeof(Step) / kChunk;
  using Tail = K32<DType::Q4_0>;
  struct X {
    const Step* s;
    __m512 dy;
  };
  struct Acc {
    __m512 f;
  };
  // Steps for the first steps*16 blocks of a, then the remaining blocks as they are.
  SHRINK_AVX512_INLINE static void build(const BlockQ8_0* a, int64_t nb, uint8_t* out) {
    const int64_t steps = nb / kChunk;
    auto* st = reinterpret_cast<Step*>(out);
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t c = 0; c < steps; ++c, a += kChunk) {
      Step& s = st[c];
      for (int j = 0; j < 5; ++j) {
        _mm512_store_si512(s.lo + 64 * j, _mm512_setzero_si512());
        _mm512_store_si512(s.hi + 64 * j, _mm512_setzero_si512());
      }
      for (int k = 0; k < kChunk; ++k) {
        const auto* q = reinterpret_cast<const uint8_t*>(a[k].qs);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(s.lo + 18 * k + 2), load128(q));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(s.hi + 18 * k + 2), load128(q + 16));
      }
      for (int j = 0; j < 5; ++j) {
        const __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_load_si512(s.lo + 64 * j)),
                                                ones, _mm512_load_si512(s.hi + 64 * j));
        _mm512_store_si512(s.base + 16 * j, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 3)));
      }
      for (int g = 0; g < 4; ++g)
        _mm_storeu_ps(s.dy + 4 * g, f16x4(reinterpret_cast<const uint8_t*>(&a[4 * g].d), sizeof(BlockQ8_0)));
    }
    std::memcpy(out + steps * sizeof(Step), a, static_cast<size_t>((nb - steps * kChunk) * sizeof(BlockQ8_0)));
  }
  static constexpr int64_t buffer_bytes(int64_t nb) {
    return nb / kChunk * int64_t{sizeof(Step)} + nb % kChunk * int64_t{sizeof(BlockQ8_0)};
  }
  SHRINK_AVX512_INLINE static X prep(const uint8_t* a) {
    const auto* s = reinterpret_cast<const Step*>(a);
    return {s, _mm512_load_ps(s->dy)};
  }
  SHRINK_AVX512_INLINE static Acc zero() { return {_mm512_setzero_ps()}; }
  // Float lane i of part j (bytes 64j + 4i..) belongs to block (64j + 4i) / 18
  // (lanes past the step, all-zero products, take block 15).
  static constexpr int lane_block(int j, int i) { return (64 * j + 4 * i) / 18 < 16 ? (64 * j + 4 * i) / 18 : 15; }
  SHRINK_AVX512_INLINE static __m512i lane_blocks(int j) {
    return _mm512_set_epi32(lane_block(j, 15), lane_block(j, 14), lane_block(j, 13), lane_block(j, 12), lane_block(j, 11),
                            lane_block(j, 10), lane_block(j, 9), lane_block(j, 8), lane_block(j, 7), lane_block(j, 6),
                            lane_block(j, 5), lane_block(j, 4), lane_block(j, 3), lane_block(j, 2), lane_block(j, 1),
                            lane_block(j, 0));
  }
  // The 16 weight scales: group g (blocks 4g..4g+3) loaded from p + 70g puts
  // its scales at words g, 9 + g, 18 + g, 27 + g; blended, then compacted.
  SHRINK_AVX512_INLINE static __m512 scales(const uint8_t* p) {
    __m512i v = _mm512_loadu_si512(p);
    v = _mm512_mask_blend_epi16(0x10080402u, v, _mm512_loadu_si512(p + 70));
    v = _mm512_mask_blend_epi16(0x20100804u, v, _mm512_loadu_si512(p + 140));
    v = _mm512_mask_blend_epi16(0x40201008u, v, _mm512_loadu_si512(p + 210));
    // Block 4g + m is word 9m + g.
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         30, 21, 12, 3, 29, 20, 11, 2, 28, 19, 10, 1, 27, 18, 9, 0);
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, v)));
  }
  SHRINK_AVX512_INLINE static void part(__m512i w, const Step& s, int j, __m512 dd, __m512& acc) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_and_si512(w, m4), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), m4);
    __m512i sum = _mm512_load_si512(s.base + 16 * j);
    sum = _mm512_dpbusd_epi32(sum, lo, _mm512_load_si512(s.lo + 64 * j));
    sum = _mm512_dpbusd_epi32(sum, hi, _mm512_load_si512(s.hi + 64 * j));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(lane_blocks(j), dd), acc);
  }
  SHRINK_AVX512_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const __m512 dd = _mm512_mul_ps(scales(p), x.dy);
    part(_mm512_loadu_si512(p), *x.s, 0, dd, acc.f);
    part(_mm512_loadu_si512(p + 64), *x.s, 1, dd, acc.f);
    part(_mm512_loadu_si512(p + 128), *x.s, 2, dd, acc.f);
    part(_mm512_loadu_si512(p + 192), *x.s, 3, dd, acc.f);
    part(_mm512_zextsi256_si512(load256(p + 256)), *x.s, 4, dd, acc.f);
  }
  SHRINK_AVX512_INLINE static float finish(const Acc& acc) { return _mm512_reduce_add_ps(acc.f); }
};

// ---------------------------------------------------------------------------
// Row drivers.

// Adds blocks [0, nb) of R rows (row i at W + i * stride) to acc: full chunks,
// then a partial chunk copied into zero-padded blocks (zero codes and scales
// contribute exactly 0) and the same arithmetic.
template <class K, int R>
SHRINK_AVX512_INLINE void accumulate(const uint8_t* W, int64_t stride, const uint8_t* act, int64_t nb, typename K::Acc* acc) {
  const int64_t full = nb / K::kChunk;
  constexpr int64_t kChunkBytes = K::kChunk * K::kBytes;
  constexpr int64_t kAhead = prefetch_ahead(R);
  for (int64_t c = 0; c < full; ++c) {
    const typename K::X x = K::prep(act + c * K::kChunk * K::kActBytes);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const uint8_t* p = W + i * stride + c * kChunkBytes;
      for (int64_t o = 0; o < kChunkBytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + kAhead + o), _MM_HINT_T0);
      K::row(p, x, acc[i]);
    }
  }
  if (const int64_t tail = nb - full * K::kChunk; tail > 0) {
    alignas(64) uint8_t abuf[K::kChunk * K::kActBytes] = {};
    alignas(64) uint8_t wbuf[kChunkBytes + 64] = {};
    std::memcpy(abuf, act + full * K::kChunk * K::kActBytes, static_cast<size_t>(tail * K::kActBytes));
    const typename K::X x = K::prep(abuf);
    for (int i = 0; i < R; ++i) {
      std::memcpy(wbuf, W + i * stride + full * kChunkBytes, static_cast<size_t>(tail * K::kBytes));
      K::row(wbuf, x, acc[i]);
    }
  }
}

// y[i * ystride] = dot(row i, act) for i < R; row i starts at W + i * stride.
// A kernel with a Tail type covers whole chunks only; the Tail kernel does
// the blocks after them, with its activation blocks at the matching offset.
template <class K, int R>
SHRINK_AVX512 void dot_rows(const uint8_t* W, int64_t stride, const uint8_t* act, float* y, int64_t ystride,
                            int64_t nb) {
  typename K::Acc acc[R];
  for (int i = 0; i < R; ++i) acc[i] = K::zero();
  if constexpr (requires { typename K::Tail; }) {
    using T = typename K::Tail;
    static_assert(T::kBytes == K::kBytes);
    const int64_t main = nb / K::kChunk * K::kChunk;
    accumulate<K, R>(W, stride, act, main, acc);
    typename T::Acc tacc[R];
    for (int i = 0; i < R; ++i) tacc[i] = T::zero();
    accumulate<T, R>(W + main * K::kBytes, stride, act + main * K::kActBytes, nb - main, tacc);
    for (int i = 0; i < R; ++i) y[i * ystride] = K::finish(acc[i]) + T::finish(tacc[i]);
  } else {
    accumulate<K, R>(W, stride, act, nb, acc);
    for (int i = 0; i < R; ++i) y[i * ystride] = K::finish(acc[i]);
  }
}

// R rows from R far-apart runs of rows walked in step (see gemv_avx512.cpp).
template <class K, int R>
SHRINK_AVX512 void rows_in_runs(const uint8_t* w, const uint8_t* act, float* y, int64_t rows, int64_t nb) {
  const int64_t row_bytes = nb * K::kBytes;
  int64_t run = rows / R;
  if (run > 1 && (run * row_bytes) % 4096 == 0 && row_bytes % 4096 != 0) --run;
  for (int64_t i = 0; i < run; ++i) dot_rows<K, R>(w + i * row_bytes, run * row_bytes, act, y + i, run, nb);
  for (int64_t r = run * R; r < rows; ++r) dot_rows<K, 1>(w + r * row_bytes, 0, act, y + r, 0, nb);
}

template <class K>
SHRINK_AVX512 void rows_typed(const void* W, const void* act, float* y, int64_t rows, int64_t cols, int64_t be) {
  const auto* w = static_cast<const uint8_t*>(W);
  const auto* a = static_cast<const uint8_t*>(act);
  const int64_t nb = cols / be;
  if (streamed_walk(rows * nb * K::kBytes, kStreamedMinBytes))
    rows_in_runs<K, kRowsStreamed>(w, a, y, rows, nb);
  else
    rows_in_runs<K, kRowsCached>(w, a, y, rows, nb);
}

// Q4_0 has two kernels. Q40Wide computes faster from L2 (BM_QGemvL2, one Zen 5
// core: 60 against 45 GB/s; +39% on the Intel Xeon of session 3), but on Zen 5
// K32<Q4_0> streams faster from DRAM (BM_QGemvStream 4096 x 4096, one thread,
// two runs: 34.4 / 32.6 against 33.5 / 29.3 GB/s on the 4-stream walk, 30.1 /
// 29.2 against 26.9 / 24.9 on the 8-stream one) and decoded llama-500m 5-6%
// faster at one thread and 6% at two (session 12, alternated runs). So AMD
// CPUs take K32; others keep Q40Wide (not measured from DRAM on Intel).
bool q4_0_wide() { return !cpu_features().amd; }

SHRINK_AVX512 void rows_q4_0_k32(const void* W, const void* act, float* y, int64_t rows, int64_t cols) {
  rows_typed<K32<DType::Q4_0>>(W, act, y, rows, cols, kQK);
}

// Q40Wide: the activation rearranged once per call (per thread).
SHRINK_AVX512 void rows_q4_0_wide(const void* W, const void* act, float* y, int64_t rows, int64_t cols) {
  struct alignas(64) Line {
    uint8_t b[64];
  };
  const int64_t nb = cols / kQK;
  thread_local std::vector<Line> buf;
  const auto n = static_cast<size_t>((Q40Wide::buffer_bytes(nb) + 63) / 64);
  if (buf.size() < n) buf.resize(n);
  auto* a = reinterpret_cast<uint8_t*>(buf.data());
  Q40Wide::build(static_cast<const BlockQ8_0*>(act), nb, a);
  rows_typed<Q40Wide>(W, a, y, rows, cols, kQK);
}

// ---------------------------------------------------------------------------
// Activation quantizers (same bytes as quantize_act_ref: the same scalar
// scale arithmetic, x * id in f32 and round-half-even conversion).

SHRINK_AVX512_INLINE __m512 abs16(__m512 v) { return _mm512_abs_ps(v); }

template <bool kSum>
SHRINK_AVX512 void quantize_q8_32(const float* x, uint8_t* out, int64_t nb, int64_t stride) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, out += stride) {
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(abs16(x0), abs16(x1)));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, _mm512_set1_ps(id)));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, _mm512_set1_ps(id)));
    const int qs = kSum ? 4 : 2;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + qs), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + qs + 16), _mm512_cvtepi32_epi8(q1));
    const uint16_t dh = f32_to_f16(d);
    std::memcpy(out, &dh, 2);
    if constexpr (kSum) {
      const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
      const uint16_t sh = f32_to_f16(d * static_cast<float>(sum));
      std::memcpy(out + 2, &sh, 2);
    }
  }
}

SHRINK_AVX512 void quantize_q8_k(const float* x, BlockQ8_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < kQK_K; j += 16) m = _mm512_max_ps(m, abs16(_mm512_loadu_ps(x + j)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0.0f) {
      std::memset(b + i, 0, sizeof(BlockQ8_K));
      continue;
    }
    // The first value of largest magnitude, with its sign.
    float vmax = 0;
    for (int j = 0; j < kQK_K; j += 16) {
      const __mmask16 k = _mm512_cmp_ps_mask(abs16(_mm512_loadu_ps(x + j)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (k) {
        vmax = x[j + __builtin_ctz(k)];
        break;
      }
    }
    const float iscale = -127.0f / vmax;
    const __m512 is = _mm512_set1_ps(iscale);
    for (int j = 0; j < kQK_K; j += 16) {
      const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(is, _mm512_loadu_ps(x + j))), _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs + j), _mm512_cvtepi32_epi8(q));
      b[i].bsums[j / 16] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    b[i].d = 1.0f / iscale;
  }
}

}  // namespace

bool qdot_impl::has_avx512(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return true;
    default: return false;
  }
}

void qdot_impl::rows_avx512(DType t, const void* W, const void* act, float* y, int64_t rows, int64_t cols) {
  switch (t) {
    case DType::Q8_0: return rows_typed<K32<DType::Q8_0>>(W, act, y, rows, cols, kQK);
    case DType::Q4_0: return q4_0_wide() ? rows_q4_0_wide(W, act, y, rows, cols) : rows_q4_0_k32(W, act, y, rows, cols);
    case DType::Q4_1: return rows_typed<K32<DType::Q4_1>>(W, act, y, rows, cols, kQK);
    case DType::Q5_0: return rows_typed<K32<DType::Q5_0>>(W, act, y, rows, cols, kQK);
    case DType::Q5_1: return rows_typed<K32<DType::Q5_1>>(W, act, y, rows, cols, kQK);
    case DType::Q2_K: return rows_typed<KQ2>(W, act, y, rows, cols, kQK_K);
    case DType::Q3_K: return rows_typed<KQ3>(W, act, y, rows, cols, kQK_K);
    case DType::Q4_K: return rows_typed<KQ45<false>>(W, act, y, rows, cols, kQK_K);
    case DType::Q5_K: return rows_typed<KQ45<true>>(W, act, y, rows, cols, kQK_K);
    case DType::Q6_K: return rows_typed<KQ6>(W, act, y, rows, cols, kQK_K);
    default: return rows_ref(t, W, act, y, rows, cols);
  }
}

void qdot_impl::rows_avx512_other_q4_0(DType t, const void* W, const void* act, float* y, int64_t rows, int64_t cols) {
  if (t != DType::Q4_0) return rows_avx512(t, W, act, y, rows, cols);
  return q4_0_wide() ? rows_q4_0_k32(W, act, y, rows, cols) : rows_q4_0_wide(W, act, y, rows, cols);
}

void qdot_impl::quantize_act_avx512(DType t, const float* x, void* act, int64_t n) {
  auto* out = static_cast<uint8_t*>(act);
  switch (qdot_act_type(t)) {
    case QAct::Q8_0: return quantize_q8_32<false>(x, out, n / kQK, sizeof(BlockQ8_0));
    case QAct::Q8_1: return quantize_q8_32<true>(x, out, n / kQK, sizeof(BlockQ8_1));
    case QAct::Q8_K: return quantize_q8_k(x, reinterpret_cast<BlockQ8_K*>(out), n / kQK_K);
  }
}

}  // namespace shrink::kernels
