// Internal to src/kernels: the prepared activations and the per-ISA entry
// points of the repacked GEMVs (repack_x16.h).
#pragma once
#include <cstdint>

namespace shrink::kernels::x16_impl {

constexpr int64_t kQ4_0TileBytes = 576;
constexpr int64_t kQ4_KTileBytes = 2304;

// One Q8_0 activation block for Q4_0 tiles: its codes, its scale widened to
// f32, and -8 * sum(codes) (Q4_0 stores codes offset by 8).
struct alignas(16) ActQ8_0 {
  int8_t qs[32];
  float d;
  int32_t neg8sum;
  int32_t pad[2];
};
static_assert(sizeof(ActQ8_0) == 48);

// One Q8_K activation block for Q4_K tiles: codes, scale, and the sum of the
// codes of each 32-value sub-block (what the mins multiply).
struct alignas(16) ActQ8_K {
  int8_t qs[256];
  float d;
  int32_t bsum[8];
  int32_t pad[3];
};
static_assert(sizeof(ActQ8_K) == 304);

// y[16 g + i] for g < groups: group g's `tiles` tiles are consecutive from
// P + g * stride (stride >= tiles * tile bytes: see group_stride in
// repack_x16.cpp), act holds the activation blocks of one row of tiles.
void q4_0_ref(const uint8_t* P, const ActQ8_0* act, float* y, int64_t groups, int64_t tiles, int64_t stride);
void q4_0_avx512(const uint8_t* P, const ActQ8_0* act, float* y, int64_t groups, int64_t tiles, int64_t stride);
void q4_k_ref(const uint8_t* P, const ActQ8_K* act, float* y, int64_t groups, int64_t tiles, int64_t stride);
void q4_k_avx512(const uint8_t* P, const ActQ8_K* act, float* y, int64_t groups, int64_t tiles, int64_t stride);

}  // namespace shrink::kernels::x16_impl
