// AVX2 kernels of the quantized dot products (only called when the CPU
// reports AVX2 + FMA + F16C; see qdot.cpp). Integer products are exact:
// vpmaddubsw multiplies unsigned weight codes (or |q8| with the activation's
// sign moved over, for Q8_0) with int8 activation codes into int16 pairs,
// which cannot saturate for these code ranges, then vpmaddwd sums pairs into
// int32 (with 1s, or with the K-quant sub-block scales). Per-block f32
// scaling as ggml's vec_dot (ggml/src/ggml-cpu/arch/x86/quants.c was read for
// ideas); the code is our own. Row grouping as in gemv_avx2.cpp.
#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "kernels/qdot.h"
#include "kernels/row_slabs.h"

#define SHRINK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define SHRINK_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace shrink::kernels {

namespace {

constexpr int kRowsCached = 4;
constexpr int kRowsStreamed = 6;
constexpr int64_t kStreamedMinBytes = int64_t{1} << 20;

SHRINK_AVX2_INLINE uint16_t u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
SHRINK_AVX2_INLINE uint32_t u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
SHRINK_AVX2_INLINE __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
SHRINK_AVX2_INLINE __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
SHRINK_AVX2_INLINE float f16(const uint8_t* p) { return _cvtsh_ss(u16(p)); }

SHRINK_AVX2_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
SHRINK_AVX2_INLINE float hsum4(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
SHRINK_AVX2_INLINE int hsum8i(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// sum of u8 x s8 products, 8 int32 lanes (each 4 adjacent products).
SHRINK_AVX2_INLINE __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// 16 packed bytes -> 32 codes: low nibbles (codes 0..15), then high nibbles.
SHRINK_AVX2_INLINE __m256i nibbles32(const uint8_t* p) {
  const __m128i v = load128(p);
  const __m256i w = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
  return _mm256_and_si256(w, _mm256_set1_epi8(0x0F));
}
// Byte j = 16 where bit j of the little-endian word at p is set, else 0.
SHRINK_AVX2_INLINE __m256i fifth_bits(const uint8_t* p) {
  const __m256i h = _mm256_set1_epi32(static_cast<int>(u32(p)));
  // Byte j of the result looks at byte j/8 of the word, bit j%8.
  const __m256i idx = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  const __m256i sel = _mm256_and_si256(_mm256_shuffle_epi8(h, idx), bit);
  return _mm256_and_si256(_mm256_cmpeq_epi8(sel, bit), _mm256_set1_epi8(16));
}

// ---------------------------------------------------------------------------
// 32-value blocks, one block per step.

constexpr int64_t block_bytes32(DType t) {
  return t == DType::Q8_0   ? sizeof(BlockQ8_0)
         : t == DType::Q4_0 ? sizeof(BlockQ4_0)
         : t == DType::Q4_1 ? sizeof(BlockQ4_1)
         : t == DType::Q5_0 ? sizeof(BlockQ5_0)
                            : sizeof(BlockQ5_1);
}

template <DType T>
struct K32 {
  static constexpr bool kQ8_1 = T == DType::Q4_1 || T == DType::Q5_1;
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = block_bytes32(T);
  static constexpr int64_t kActBytes = kQ8_1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
  static constexpr int kOffsetLog2 = T == DType::Q4_0 ? 3 : T == DType::Q5_0 ? 4 : -1;

  struct X {
    __m256i y, base;
    float dy, sy;
  };
  struct Acc {
    __m256 f;
    float m;
  };
  SHRINK_AVX2_INLINE static X prep(const uint8_t* a) {
    X x;
    x.y = load256(a + (kQ8_1 ? 4 : 2));
    if constexpr (kOffsetLog2 >= 0) {
      const __m256i s = dot_u8s8(_mm256_set1_epi8(1), x.y);
      x.base = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s, kOffsetLog2));
    } else {
      x.base = _mm256_setzero_si256();
    }
    x.dy = f16(a);
    x.sy = kQ8_1 ? f16(a + 2) : 0.0f;
    return x;
  }
  SHRINK_AVX2_INLINE static Acc zero() { return {_mm256_setzero_ps(), 0.0f}; }
  SHRINK_AVX2_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    __m256i s;
    if constexpr (T == DType::Q8_0) {
      // |w| * (y with w's sign): |w| <= 128, |y| <= 127, no int16 saturation.
      const __m256i w = load256(p + 2);
      s = dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x.y, w));
    } else {
      __m256i w;
      if constexpr (T == DType::Q4_0) w = nibbles32(p + 2);
      if constexpr (T == DType::Q4_1) w = nibbles32(p + 4);
      if constexpr (T == DType::Q5_0) w = _mm256_or_si256(nibbles32(p + 6), fifth_bits(p + 2));
      if constexpr (T == DType::Q5_1) w = _mm256_or_si256(nibbles32(p + 8), fifth_bits(p + 4));
      s = _mm256_add_epi32(dot_u8s8(w, x.y), x.base);
    }
    acc.f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(p) * x.dy), acc.f);
    if constexpr (kQ8_1) acc.m += f16(p + 2) * x.sy;
  }
  SHRINK_AVX2_INLINE static float finish(const Acc& acc) { return hsum8(acc.f) + acc.m; }
};

// ---------------------------------------------------------------------------
// K-quants, one super-block per step.

// int16 value j of v (8 int16 in each 128-bit lane) broadcast to every lane:
// a byte shuffle with pattern (2j, 2j+1).
SHRINK_AVX2_INLINE __m256i pick16(__m256i v, int j) {
  return _mm256_shuffle_epi8(v, _mm256_set1_epi16(static_cast<short>((2 * j + 1) << 8 | 2 * j)));
}

template <bool kQ5>
struct KQ45 {
  using Block = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = sizeof(Block), kActBytes = sizeof(BlockQ8_K);
  struct X {
    const int8_t* y;
    __m128i bs;  // bsums[2j] + bsums[2j+1], int16
    float d;
  };
  struct Acc {
    __m256 f;
    __m128 m;
  };
  SHRINK_AVX2_INLINE static X prep(const uint8_t* ap) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(ap);
    return {a->qs, _mm_hadd_epi16(load128(a->bsums), load128(a->bsums + 8)), a->d};
  }
  SHRINK_AVX2_INLINE static Acc zero() { return {_mm256_setzero_ps(), _mm_setzero_ps()}; }
  // Bit `bit` of every qh byte moved to bit 4 (value 16).
  template <int kBit>
  SHRINK_AVX2_INLINE static __m256i qh_bit(__m256i qh) {
    const __m256i m = _mm256_set1_epi8(16);
    if constexpr (kBit <= 4) return _mm256_and_si256(_mm256_slli_epi16(qh, 4 - kBit), m);
    else return _mm256_and_si256(_mm256_srli_epi16(qh, kBit - 4), m);
  }
  template <int kC>
  SHRINK_AVX2_INLINE static __m256i chunk(const Block* b, const X& x, __m256i sc, __m256i qh, __m256i s) {
    // 64 values: low nibbles = sub-block 2c, high nibbles = sub-block 2c + 1.
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i v = load256(b->qs + 32 * kC);
    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if constexpr (kQ5) {
      lo = _mm256_or_si256(lo, qh_bit<2 * kC>(qh));
      hi = _mm256_or_si256(hi, qh_bit<2 * kC + 1>(qh));
    }
    const __m256i plo = _mm256_maddubs_epi16(lo, load256(x.y + 64 * kC));
    const __m256i phi = _mm256_maddubs_epi16(hi, load256(x.y + 64 * kC + 32));
    s = _mm256_add_epi32(s, _mm256_madd_epi16(plo, pick16(sc, 2 * kC)));
    return _mm256_add_epi32(s, _mm256_madd_epi16(phi, pick16(sc, 2 * kC + 1)));
  }
  SHRINK_AVX2_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const auto* b = reinterpret_cast<const Block*>(p);
    const uint32_t a0 = u32(b->scales), a1 = u32(b->scales + 4), a2 = u32(b->scales + 8);
    const uint32_t s_lo = a0 & 0x3f3f3f3f, s_hi = (a2 & 0x0f0f0f0f) | ((a0 >> 2) & 0x30303030);
    const uint32_t m_lo = a1 & 0x3f3f3f3f, m_hi = ((a2 >> 4) & 0x0f0f0f0f) | ((a1 >> 2) & 0x30303030);
    const __m128i sc8 = _mm_cvtsi64_si128(static_cast<long long>(uint64_t{s_lo} | uint64_t{s_hi} << 32));
    const __m128i m8 = _mm_cvtsi64_si128(static_cast<long long>(uint64_t{m_lo} | uint64_t{m_hi} << 32));
    const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc8));
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kQ5) qh = load256(b->qh);
    __m256i s = _mm256_setzero_si256();
    s = chunk<0>(b, x, sc, qh, s);
    s = chunk<1>(b, x, sc, qh, s);
    s = chunk<2>(b, x, sc, qh, s);
    s = chunk<3>(b, x, sc, qh, s);
    const float d = f16(p) * x.d, dmin = f16(p + 2) * x.d;
    acc.f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d), acc.f);
    const __m128i ms = _mm_madd_epi16(_mm_cvtepu8_epi16(m8), x.bs);
    acc.m = _mm_fmadd_ps(_mm_cvtepi32_ps(ms), _mm_set1_ps(dmin), acc.m);
  }
  SHRINK_AVX2_INLINE static float finish(const Acc& acc) { return hsum8(acc.f) - hsum4(acc.m); }
};

// Scales for group g of a 128-value half whose 8 int16 sub-block scales are
// in both lanes of sc16h: 2g in the low lane, 2g + 1 in the high lane.
SHRINK_AVX2_INLINE __m256i group_scales(__m256i sc16h, int g) {
  const short a = static_cast<short>((4 * g + 1) << 8 | 4 * g), b = static_cast<short>((4 * g + 3) << 8 | (4 * g + 2));
  return _mm256_shuffle_epi8(sc16h, _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a)));
}
// Lane h of v (8 int16) in both lanes.
SHRINK_AVX2_INLINE __m256i half_lane(__m256i v, int h) {
  return _mm256_broadcastsi128_si256(h == 0 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1));
}

struct KQ6 {
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = sizeof(BlockQ6_K), kActBytes = sizeof(BlockQ8_K);
  struct X {
    const int8_t* y;
    __m256i bs;
    float d;
  };
  struct Acc {
    __m256 f;
  };
  SHRINK_AVX2_INLINE static X prep(const uint8_t* ap) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(ap);
    return {a->qs, load256(a->bsums), a->d};
  }
  SHRINK_AVX2_INLINE static Acc zero() { return {_mm256_setzero_ps()}; }
  SHRINK_AVX2_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m128i sc8 = load128(b->scales);
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    // The -32 offset of every code: 32 * sum_j sc_j * bsums_j.
    __m256i s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, x.bs), 5));
    for (int h = 0; h < 2; ++h) {
      const __m256i sch = half_lane(sc16, h);
      const __m256i a = load256(b->ql + 64 * h), c = load256(b->ql + 64 * h + 32), qh = load256(b->qh + 32 * h);
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
          _mm256_or_si256(_mm256_and_si256(c, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), _mm256_and_si256(qh, m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
      };
      for (int g = 0; g < 4; ++g) {
        const __m256i pr = _mm256_maddubs_epi16(q[g], load256(x.y + 128 * h + 32 * g));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(pr, group_scales(sch, g)));
      }
    }
    acc.f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(p + offsetof(BlockQ6_K, d)) * x.d), acc.f);
  }
  SHRINK_AVX2_INLINE static float finish(const Acc& acc) { return hsum8(acc.f); }
};

// Q2_K: qs bytes 32h + l hold lane l of the four 32-value groups of half h
// (group g in bits 2g, 2g+1), matching activation codes 128h + 32g + l.
// Scales: low nibble of scales[e/16]; mins (high nibble) against bsums.
struct KQ2 {
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = sizeof(BlockQ2_K), kActBytes = sizeof(BlockQ8_K);
  struct X {
    const int8_t* y;
    __m256i bs;
    float d;
  };
  struct Acc {
    __m256 f, m;
  };
  SHRINK_AVX2_INLINE static X prep(const uint8_t* ap) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(ap);
    return {a->qs, load256(a->bsums), a->d};
  }
  SHRINK_AVX2_INLINE static Acc zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  SHRINK_AVX2_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
    const __m128i sb = load128(b->scales), m4 = _mm_set1_epi8(0x0F);
    const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sb, m4));
    const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), m4));
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i s = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i sch = half_lane(sc16, h);
      const __m256i v = load256(b->qs + 32 * h);
      for (int g = 0; g < 4; ++g) {
        const __m256i c = _mm256_and_si256(_mm256_srli_epi16(v, 2 * g), m3);
        const __m256i pr = _mm256_maddubs_epi16(c, load256(x.y + 128 * h + 32 * g));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(pr, group_scales(sch, g)));
      }
    }
    const float dy = x.d;
    acc.f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(p + offsetof(BlockQ2_K, d)) * dy), acc.f);
    acc.m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(mn16, x.bs)),
                            _mm256_set1_ps(f16(p + offsetof(BlockQ2_K, dmin)) * dy), acc.m);
  }
  SHRINK_AVX2_INLINE static float finish(const Acc& acc) { return hsum8(acc.f) - hsum8(acc.m); }
};

// The 16 Q3_K scales (q3_k_scale(j) - 32) as int8 from the 12 packed bytes at
// p (loaded as the 16 bytes from p - 2, which end with the block's d: no read
// past the block). Dwords 0, 1 of the low nibbles are bytes 0..3, 4..7 (low
// nibbles), dwords 2, 3 the same bytes' high nibbles; the top 2 bits of scale
// 4k + i are bits 2k, 2k+1 of byte 8 + i.
SHRINK_AVX2_INLINE __m128i q3k_scales(const uint8_t* p) {
  const __m128i v = load128(p - 2);
  const __m128i lo8 = _mm_shuffle_epi8(v, _mm_set_epi8(9, 8, 7, 6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2));
  const __m128i hi8 = _mm_shuffle_epi8(v, _mm_set_epi8(13, 12, 11, 10, 13, 12, 11, 10, 13, 12, 11, 10, 13, 12, 11, 10));
  const __m128i lo = _mm_and_si128(_mm_srlv_epi32(lo8, _mm_set_epi32(4, 4, 0, 0)), _mm_set1_epi8(0x0F));
  const __m128i hi = _mm_and_si128(_mm_slli_epi32(_mm_srlv_epi32(hi8, _mm_set_epi32(6, 4, 2, 0)), 4), _mm_set1_epi8(0x30));
  return _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
}

// Q3_K: 2-bit codes as Q2_K; the high bit of group g of half h is bit
// 4h + g of hmask[l]. Unsigned codes u = crumb + 4 * hbit = q + 4 (0..7); the
// offset comes back through the activation sums: -4 * sum_j sc_j * bsums_j.
struct KQ3 {
  static constexpr int kChunk = 1;
  static constexpr int64_t kBytes = sizeof(BlockQ3_K), kActBytes = sizeof(BlockQ8_K);
  struct X {
    const int8_t* y;
    __m256i bs;
    float d;
  };
  struct Acc {
    __m256 f;
  };
  SHRINK_AVX2_INLINE static X prep(const uint8_t* ap) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(ap);
    return {a->qs, load256(a->bsums), a->d};
  }
  SHRINK_AVX2_INLINE static Acc zero() { return {_mm256_setzero_ps()}; }
  // Bit kBit of every byte of hm moved to bit 2 (value 4), other bits clear.
  template <int kBit>
  SHRINK_AVX2_INLINE static __m256i hbit(__m256i hm) {
    const __m256i c4 = _mm256_set1_epi8(4);
    if constexpr (kBit <= 2) return _mm256_and_si256(_mm256_slli_epi16(hm, 2 - kBit), c4);
    else return _mm256_and_si256(_mm256_srli_epi16(hm, kBit - 2), c4);
  }
  template <int kH, int kG>
  SHRINK_AVX2_INLINE static __m256i group(__m256i v, __m256i hm, __m256i sch, const X& x, __m256i s) {
    const __m256i c = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 2 * kG), _mm256_set1_epi8(3)), hbit<4 * kH + kG>(hm));
    const __m256i pr = _mm256_maddubs_epi16(c, load256(x.y + 128 * kH + 32 * kG));
    return _mm256_add_epi32(s, _mm256_madd_epi16(pr, group_scales(sch, kG)));
  }
  template <int kH>
  SHRINK_AVX2_INLINE static __m256i half(const BlockQ3_K* b, __m256i hm, __m256i sc16, const X& x, __m256i s) {
    const __m256i sch = half_lane(sc16, kH);
    const __m256i v = load256(b->qs + 32 * kH);
    s = group<kH, 0>(v, hm, sch, x, s);
    s = group<kH, 1>(v, hm, sch, x, s);
    s = group<kH, 2>(v, hm, sch, x, s);
    return group<kH, 3>(v, hm, sch, x, s);
  }
  SHRINK_AVX2_INLINE static void row(const uint8_t* p, const X& x, Acc& acc) {
    const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
    const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales(b->scales));
    const __m256i hm = load256(b->hmask);
    __m256i s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, x.bs), 2));
    s = half<0>(b, hm, sc16, x, s);
    s = half<1>(b, hm, sc16, x, s);
    acc.f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(p + offsetof(BlockQ3_K, d)) * x.d), acc.f);
  }
  SHRINK_AVX2_INLINE static float finish(const Acc& acc) { return hsum8(acc.f); }
};

// ---------------------------------------------------------------------------
// Row drivers (as qdot_avx512.cpp).

template <class K, int R>
SHRINK_AVX2 void dot_rows(const uint8_t* W, int64_t stride, const uint8_t* act, float* y, int64_t ystride, int64_t nb) {
  typename K::Acc acc[R];
  for (int i = 0; i < R; ++i) acc[i] = K::zero();
  constexpr int64_t kAhead = prefetch_ahead(R);
  for (int64_t c = 0; c < nb; ++c) {
    const typename K::X x = K::prep(act + c * K::kActBytes);
    // Unrolled: the accumulators stay in registers (Q4_K ~14% faster).
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const uint8_t* p = W + i * stride + c * K::kBytes;
      for (int64_t o = 0; o < K::kBytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + kAhead + o), _MM_HINT_T0);
      K::row(p, x, acc[i]);
    }
  }
  for (int i = 0; i < R; ++i) y[i * ystride] = K::finish(acc[i]);
}

template <class K, int R>
SHRINK_AVX2 void rows_in_runs(const uint8_t* w, const uint8_t* act, float* y, int64_t rows, int64_t nb) {
  const int64_t row_bytes = nb * K::kBytes;
  int64_t run = rows / R;
  if (run > 1 && (run * row_bytes) % 4096 == 0 && row_bytes % 4096 != 0) --run;
  for (int64_t i = 0; i < run; ++i) dot_rows<K, R>(w + i * row_bytes, run * row_bytes, act, y + i, run, nb);
  for (int64_t r = run * R; r < rows; ++r) dot_rows<K, 1>(w + r * row_bytes, 0, act, y + r, 0, nb);
}

template <class K>
SHRINK_AVX2 void rows_typed(const void* W, const void* act, float* y, int64_t rows, int64_t cols, int64_t be) {
  const auto* w = static_cast<const uint8_t*>(W);
  const auto* a = static_cast<const uint8_t*>(act);
  const int64_t nb = cols / be;
  if (streamed_walk(rows * nb * K::kBytes, kStreamedMinBytes))
    rows_in_runs<K, kRowsStreamed>(w, a, y, rows, nb);
  else
    rows_in_runs<K, kRowsCached>(w, a, y, rows, nb);
}

// ---------------------------------------------------------------------------
// Activation quantizers (same bytes as quantize_act_ref).

SHRINK_AVX2_INLINE __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
SHRINK_AVX2_INLINE float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
// 32 int32 (in range of int8) -> 32 bytes in order.
SHRINK_AVX2_INLINE __m256i pack32(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
  const __m256i c = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
  return _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

template <bool kSum>
SHRINK_AVX2 void quantize_q8_32(const float* x, uint8_t* out, int64_t nb, int64_t stride) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, out += stride) {
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    const float amax = hmax8(_mm256_max_ps(_mm256_max_ps(abs8(v[0]), abs8(v[1])), _mm256_max_ps(abs8(v[2]), abs8(v[3]))));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], _mm256_set1_ps(id)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (kSum ? 4 : 2)), pack32(q[0], q[1], q[2], q[3]));
    const uint16_t dh = f32_to_f16(d);
    std::memcpy(out, &dh, 2);
    if constexpr (kSum) {
      const int sum = hsum8i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
      const uint16_t sh = f32_to_f16(d * static_cast<float>(sum));
      std::memcpy(out + 2, &sh, 2);
    }
  }
}

SHRINK_AVX2 void quantize_q8_k(const float* x, BlockQ8_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < kQK_K; j += 8) m = _mm256_max_ps(m, abs8(_mm256_loadu_ps(x + j)));
    const float amax = hmax8(m);
    if (amax == 0.0f) {
      std::memset(b + i, 0, sizeof(BlockQ8_K));
      continue;
    }
    float vmax = 0;
    for (int j = 0; j < kQK_K; j += 8) {
      const int k = _mm256_movemask_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + j)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
      if (k) {
        vmax = x[j + __builtin_ctz(static_cast<unsigned>(k))];
        break;
      }
    }
    const float iscale = -127.0f / vmax;
    const __m256 is = _mm256_set1_ps(iscale);
    const __m256i c127 = _mm256_set1_epi32(127);
    for (int j = 0; j < kQK_K; j += 32) {
      __m256i q[4];
      for (int k = 0; k < 4; ++k)
        q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + j + 8 * k))), c127);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs + j), pack32(q[0], q[1], q[2], q[3]));
      b[i].bsums[j / 16] = static_cast<int16_t>(hsum8i(_mm256_add_epi32(q[0], q[1])));
      b[i].bsums[j / 16 + 1] = static_cast<int16_t>(hsum8i(_mm256_add_epi32(q[2], q[3])));
    }
    b[i].d = 1.0f / iscale;
  }
}

}  // namespace

bool qdot_impl::has_avx2(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return true;
    default: return false;
  }
}

void qdot_impl::rows_avx2(DType t, const void* W, const void* act, float* y, int64_t rows, int64_t cols) {
  switch (t) {
    case DType::Q8_0: return rows_typed<K32<DType::Q8_0>>(W, act, y, rows, cols, kQK);
    case DType::Q4_0: return rows_typed<K32<DType::Q4_0>>(W, act, y, rows, cols, kQK);
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

void qdot_impl::quantize_act_avx2(DType t, const float* x, void* act, int64_t n) {
  auto* out = static_cast<uint8_t*>(act);
  switch (qdot_act_type(t)) {
    case QAct::Q8_0: return quantize_q8_32<false>(x, out, n / kQK, sizeof(BlockQ8_0));
    case QAct::Q8_1: return quantize_q8_32<true>(x, out, n / kQK, sizeof(BlockQ8_1));
    case QAct::Q8_K: return quantize_q8_k(x, reinterpret_cast<BlockQ8_K*>(out), n / kQK_K);
  }
}

}  // namespace shrink::kernels
