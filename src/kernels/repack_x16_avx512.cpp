// AVX-512 VNNI kernels of the repacked GEMVs (layouts: repack_x16.h). Each
// 32-bit lane is one row: a 64-byte load holds four code bytes of each of 16
// rows, and vpdpbusd (u8 codes x s8 activation codes broadcast from memory)
// accumulates the 16 row sums. Low nibbles are masked to 0..15; high nibbles
// are only masked in place (16 * code, still a u8), summed separately and
// shifted down by 4 once per (sub-)block, which is exact because that sum is
// 16 times an integer. No shuffles, no horizontal sums: a Q4_0 block costs 8
// ands + 8 dot instructions + 6 for scaling.
//
// Several groups from distant parts of the slab are computed together (one
// DRAM stream each, prefetched ahead), as gemv_avx512.cpp does for rows.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>

#include "kernels/repack_x16.h"
#include "kernels/repack_x16_impl.h"
#include "kernels/row_slabs.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")))
#define SHRINK_AVX512_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c"), always_inline)) inline

namespace shrink::kernels::x16_impl {

namespace {

constexpr int64_t kPrefetchBytes = 1024;
// Above this many bytes per slab the groups come from DRAM: walk more streams at once.
constexpr int64_t kStreamedMinBytes = int64_t{2} << 20;

SHRINK_AVX512_INLINE __m512i bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
SHRINK_AVX512_INLINE __m512i load(const uint8_t* p) { return _mm512_loadu_si512(p); }
SHRINK_AVX512_INLINE __m512 f16x16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// lo += low nibbles . a[0..4n), hi += 16 * high nibbles . a[h..h+4n), over n words from c.
template <int N>
SHRINK_AVX512_INLINE void nibble_dots(const uint8_t* c, const int8_t* a_lo, const int8_t* a_hi, __m512i& lo, __m512i& hi) {
  const __m512i lo_mask = _mm512_set1_epi8(0x0F), hi_mask = _mm512_set1_epi8(static_cast<char>(0xF0));
#pragma GCC unroll 8
  for (int k = 0; k < N; ++k) {
    const __m512i v = load(c + 64 * k);
    lo = _mm512_dpbusd_epi32(lo, _mm512_and_si512(v, lo_mask), bcast32(a_lo + 4 * k));
    hi = _mm512_dpbusd_epi32(hi, _mm512_and_si512(v, hi_mask), bcast32(a_hi + 4 * k));
  }
}

struct Q4_0 {
  static constexpr int64_t kTileBytes = kQ4_0TileBytes;
  using Act = ActQ8_0;
  static constexpr int64_t kActPerTile = 2;
  // A tile is one step: it is only nine cache lines.
  static constexpr int kSteps = 1;
  struct State {};
  SHRINK_AVX512_INLINE static void begin(State&) {}
  // acc += the tile's two blocks.
  SHRINK_AVX512_INLINE static void step(int, const uint8_t* p, const Act* a, State&, __m512& acc) {
    for (int b = 0; b < 2; ++b) {
      __m512i lo = _mm512_set1_epi32(a[b].neg8sum), hi = _mm512_setzero_si512();
      nibble_dots<4>(p + 256 * b, a[b].qs, a[b].qs + 16, lo, hi);
      const __m512i s = _mm512_add_epi32(lo, _mm512_srai_epi32(hi, 4));
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(f16x16(p + 512 + 32 * b), _mm512_set1_ps(a[b].d)), acc);
    }
  }
  SHRINK_AVX512_INLINE static void end(const uint8_t*, const Act*, const State&, __m512&) {}
};

struct Q4_K {
  static constexpr int64_t kTileBytes = kQ4_KTileBytes;
  using Act = ActQ8_K;
  static constexpr int64_t kActPerTile = 1;
  // Byte j of each lane of v, masked.
  SHRINK_AVX512_INLINE static __m512i field(__m512i v, int shift, int mask) {
    return _mm512_and_si512(_mm512_srli_epi32(v, static_cast<unsigned>(shift)), _mm512_set1_epi32(mask));
  }
  // Scale (A, C) or min (B, C) of sub-block j from the packed words (k4_scale_min, per lane).
  SHRINK_AVX512_INLINE static __m512i scale(int j, __m512i ab, __m512i c, int c_shift) {
    if (j < 4) return field(ab, 8 * j, 63);
    return _mm512_or_si512(field(c, 8 * (j - 4) + c_shift, 15), field(ab, 8 * (j - 4) + 2, 0x30));
  }
  // A tile is four steps, one per 512 bytes of codes (two sub-blocks each), so
  // that walking several groups visits each stream for 8-12 lines at a time
  // instead of 36: measured, 36-line bursts from 8 streams read DRAM ~20%
  // slower than short ones (presumably the hardware prefetcher falling behind;
  // docs/quantization.md, "The repacked layout revisited").
  static constexpr int kSteps = 4;
  struct State { __m512i isum; };
  SHRINK_AVX512_INLINE static void begin(State& st) { st.isum = _mm512_setzero_si512(); }
  SHRINK_AVX512_INLINE static void step(int c, const uint8_t* p, const Act* a, State& st, __m512&) {
    const __m512i A = load(p + 2048), C = load(p + 2176);
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    nibble_dots<8>(p + 512 * c, a->qs + 64 * c, a->qs + 64 * c + 32, lo, hi);
    st.isum = _mm512_add_epi32(st.isum, _mm512_mullo_epi32(lo, scale(2 * c, A, C, 0)));
    st.isum = _mm512_add_epi32(st.isum, _mm512_mullo_epi32(_mm512_srai_epi32(hi, 4), scale(2 * c + 1, A, C, 0)));
  }
  SHRINK_AVX512_INLINE static void end(const uint8_t* p, const Act* a, const State& st, __m512& acc) {
    const __m512i B = load(p + 2112), C = load(p + 2176);
    __m512i msum = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) msum = _mm512_add_epi32(msum, _mm512_mullo_epi32(scale(s, B, C, 4), _mm512_set1_epi32(a->bsum[s])));
    const __m512 dy = _mm512_set1_ps(a->d);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(st.isum), _mm512_mul_ps(f16x16(p + 2240), dy), acc);
    acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(f16x16(p + 2272), dy), acc);
  }
};

// G groups, group g at P + g * stride, its 16 outputs at y + g * ystride.
template <class K, int G>
SHRINK_AVX512 void groups_together(const uint8_t* P, int64_t stride, const typename K::Act* act, float* y,
                                   int64_t ystride, int64_t tiles) {
  __m512 acc[G];
  for (int g = 0; g < G; ++g) acc[g] = _mm512_setzero_ps();
  constexpr int64_t kStepLines = K::kTileBytes / 64 / K::kSteps;  // prefetched per step, the tile's lines in turn
  for (int64_t t = 0; t < tiles; ++t) {
    const typename K::Act* a = act + K::kActPerTile * t;
    typename K::State st[G];
    for (int g = 0; g < G; ++g) K::begin(st[g]);
#pragma GCC unroll 4
    for (int c = 0; c < K::kSteps; ++c) {
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) {
        const uint8_t* p = P + g * stride + t * K::kTileBytes;
        for (int64_t l = c * kStepLines; l < (c + 1) * kStepLines; ++l)
          _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + 64 * l), _MM_HINT_T0);
        K::step(c, p, a, st[g], acc[g]);
      }
    }
    for (int g = 0; g < G; ++g) K::end(P + g * stride + t * K::kTileBytes, a, st[g], acc[g]);
  }
  for (int g = 0; g < G; ++g) _mm512_storeu_ps(y + g * ystride, acc[g]);
}

// Groups in G runs walked in step (G streams); what is left over by G / 2,
// and so on down to one. An odd run length times the odd group stride (in
// cache lines) puts the G streams at G different offsets within a 4 KiB page
// (see group_stride).
template <class K, int G>
SHRINK_AVX512 void groups_in_runs(const uint8_t* P, const typename K::Act* act, float* y, int64_t groups, int64_t tiles,
                                  int64_t stride) {
  if constexpr (G == 1) {
    for (int64_t g = 0; g < groups; ++g) groups_together<K, 1>(P + g * stride, 0, act, y + g * kX16Rows, 0, tiles);
  } else {
    int64_t run = groups / G;
    if (run > 1 && run % 2 == 0) --run;
    for (int64_t i = 0; i < run; ++i)
      groups_together<K, G>(P + i * stride, run * stride, act, y + i * kX16Rows, run * kX16Rows, tiles);
    groups_in_runs<K, G / 2>(P + run * G * stride, act, y + run * G * kX16Rows, groups - run * G, tiles, stride);
  }
}

template <class K>
SHRINK_AVX512 void groups(const uint8_t* P, const typename K::Act* act, float* y, int64_t groups, int64_t tiles,
                          int64_t stride) {
  if (streamed_walk(groups * stride, kStreamedMinBytes))
    groups_in_runs<K, 8>(P, act, y, groups, tiles, stride);
  else if (groups * stride >= kStreamedMinBytes)  // in a team: about 8 streams machine-wide (row_slabs.h)
    groups_in_runs<K, 4>(P, act, y, groups, tiles, stride);
  else
    groups_in_runs<K, 2>(P, act, y, groups, tiles, stride);
}

}  // namespace

void q4_0_avx512(const uint8_t* P, const ActQ8_0* act, float* y, int64_t n, int64_t tiles, int64_t stride) {
  groups<Q4_0>(P, act, y, n, tiles, stride);
}
void q4_k_avx512(const uint8_t* P, const ActQ8_K* act, float* y, int64_t n, int64_t tiles, int64_t stride) {
  groups<Q4_K>(P, act, y, n, tiles, stride);
}

}  // namespace shrink::kernels::x16_impl
