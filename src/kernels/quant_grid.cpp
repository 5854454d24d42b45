#include "kernels/quant_grid.h"

#include <cmath>
#include <cstddef>

#include "core/error.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_kblocks.h"

// Where the codes live is the layout documented in quant_blocks.h/quant_kblocks.h
// (ggml-common.h's block structs): each element's code is made of one or two bit
// fields, e.g. Q5_K's low nibble in qs plus one bit of qh. CodeField names them so
// that get/set share one description of every layout.

namespace shrink::kernels {

namespace {

struct CodeField {
  int byte;        // offset from the block start
  int shift;       // bit position within the byte
  int width;       // bits
  int code_shift;  // where these bits go in the code
};

// Fields of element e: the low bits first; returns how many (1 or 2).
int code_fields(DType t, int e, CodeField* f) {
  const int half = e >> 7, g = (e >> 5) & 3, lane = e & 31;
  switch (t) {
    case DType::Q8_0: f[0] = {static_cast<int>(offsetof(BlockQ8_0, qs)) + e, 0, 8, 0}; return 1;
    case DType::Q4_0: f[0] = {static_cast<int>(offsetof(BlockQ4_0, qs)) + e % 16, 4 * (e / 16), 4, 0}; return 1;
    case DType::Q4_1: f[0] = {static_cast<int>(offsetof(BlockQ4_1, qs)) + e % 16, 4 * (e / 16), 4, 0}; return 1;
    case DType::Q5_0:
      f[0] = {static_cast<int>(offsetof(BlockQ5_0, qs)) + e % 16, 4 * (e / 16), 4, 0};
      f[1] = {static_cast<int>(offsetof(BlockQ5_0, qh)) + e / 8, e % 8, 1, 4};
      return 2;
    case DType::Q5_1:
      f[0] = {static_cast<int>(offsetof(BlockQ5_1, qs)) + e % 16, 4 * (e / 16), 4, 0};
      f[1] = {static_cast<int>(offsetof(BlockQ5_1, qh)) + e / 8, e % 8, 1, 4};
      return 2;
    case DType::Q2_K: f[0] = {static_cast<int>(offsetof(BlockQ2_K, qs)) + 32 * half + lane, 2 * g, 2, 0}; return 1;
    case DType::Q3_K:
      f[0] = {static_cast<int>(offsetof(BlockQ3_K, qs)) + 32 * half + lane, 2 * g, 2, 0};
      f[1] = {static_cast<int>(offsetof(BlockQ3_K, hmask)) + lane, e >> 5, 1, 2};
      return 2;
    case DType::Q4_K:
      f[0] = {static_cast<int>(offsetof(BlockQ4_K, qs)) + 32 * (e >> 6) + lane, 4 * ((e >> 5) & 1), 4, 0};
      return 1;
    case DType::Q5_K:
      f[0] = {static_cast<int>(offsetof(BlockQ5_K, qs)) + 32 * (e >> 6) + lane, 4 * ((e >> 5) & 1), 4, 0};
      f[1] = {static_cast<int>(offsetof(BlockQ5_K, qh)) + lane, e >> 5, 1, 4};
      return 2;
    case DType::Q6_K:
      f[0] = {static_cast<int>(offsetof(BlockQ6_K, ql)) + 64 * half + 32 * (g & 1) + lane, 4 * (g >> 1), 4, 0};
      f[1] = {static_cast<int>(offsetof(BlockQ6_K, qh)) + 32 * half + lane, 2 * g, 2, 4};
      return 2;
    default: fail("no code grid for ", dtype_name(t));
  }
}

// Q8_0 stores int8 q - 128: flipping the top bit of the byte converts either way.
inline int code_xor(DType t) { return t == DType::Q8_0 ? 0x80 : 0; }

int qmax_of(DType t) {
  switch (t) {
    case DType::Q8_0: return 255;
    case DType::Q2_K: return 3;
    case DType::Q3_K: return 7;
    case DType::Q4_0: case DType::Q4_1: case DType::Q4_K: return 15;
    case DType::Q5_0: case DType::Q5_1: case DType::Q5_K: return 31;
    case DType::Q6_K: return 63;
    default: fail("no code grid for ", dtype_name(t));
  }
}

void grid_32(BlockGrid* g, float scale, float offset) {
  g->sub_blocks = 1;
  g->sub_len = kQK;
  g->scale[0] = scale;
  g->offset[0] = offset;
}

// K-quants: 16 sub-blocks of 16 or 8 of 32; fills sub_blocks/sub_len.
void grid_k(BlockGrid* g, int sub_len) {
  g->sub_len = sub_len;
  g->sub_blocks = kQK_K / sub_len;
}

void grid_k_types(DType t, const uint8_t* p, BlockGrid* g) {
  if (t == DType::Q2_K) {
    const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
    const float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
    grid_k(g, 16);
    for (int j = 0; j < 16; ++j) {
      g->scale[j] = d * (b->scales[j] & 15);
      g->offset[j] = -(dmin * (b->scales[j] >> 4));
    }
  } else if (t == DType::Q3_K) {
    const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
    const float d = f16_to_f32(b->d);
    grid_k(g, 16);
    for (int j = 0; j < 16; ++j) {
      g->scale[j] = d * (q3_k_scale(j, b->scales) - 32);
      g->offset[j] = -4 * g->scale[j];
    }
  } else if (t == DType::Q6_K) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
    const float d = f16_to_f32(b->d);
    grid_k(g, 16);
    for (int j = 0; j < 16; ++j) {
      g->scale[j] = d * b->scales[j];
      g->offset[j] = -32 * g->scale[j];
    }
  } else {  // Q4_K, Q5_K: same header at the same offsets
    const auto* b = reinterpret_cast<const BlockQ4_K*>(p);
    static_assert(offsetof(BlockQ4_K, scales) == offsetof(BlockQ5_K, scales));
    const float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
    grid_k(g, 32);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      k4_scale_min(j, b->scales, &sc, &m);
      g->scale[j] = d * sc;
      g->offset[j] = -(dmin * m);
    }
  }
}

}  // namespace

bool has_block_grid(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return true;
    default: return false;
  }
}

void block_grid(DType t, const void* block, BlockGrid* g) {
  const auto* p = static_cast<const uint8_t*>(block);
  *g = BlockGrid{};
  g->qmax = qmax_of(t);
  // The first two bytes of every 32-value block are its f16 d; Q4_1/Q5_1's m follows.
  const float d = f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8)));
  switch (t) {
    case DType::Q8_0: grid_32(g, d, -128 * d); return;
    case DType::Q4_0: grid_32(g, d, -8 * d); return;
    case DType::Q5_0: grid_32(g, d, -16 * d); return;
    case DType::Q4_1:
    case DType::Q5_1: grid_32(g, d, f16_to_f32(static_cast<uint16_t>(p[2] | (p[3] << 8)))); return;
    default: grid_k_types(t, p, g);
  }
}

void block_get_codes(DType t, const void* block, uint8_t* q) {
  const auto* p = static_cast<const uint8_t*>(block);
  const int n = static_cast<int>(dtype_traits(t).block_elems), x = code_xor(t);
  CodeField f[2];
  for (int e = 0; e < n; ++e) {
    const int nf = code_fields(t, e, f);
    int code = 0;
    for (int k = 0; k < nf; ++k) code |= ((p[f[k].byte] >> f[k].shift) & ((1 << f[k].width) - 1)) << f[k].code_shift;
    q[e] = static_cast<uint8_t>(code ^ x);
  }
}

void block_set_codes(DType t, void* block, const uint8_t* q) {
  auto* p = static_cast<uint8_t*>(block);
  const int n = static_cast<int>(dtype_traits(t).block_elems), x = code_xor(t), qmax = qmax_of(t);
  CodeField f[2];
  for (int e = 0; e < n; ++e) {
    SHRINK_CHECK(q[e] <= qmax, dtype_name(t), " code ", int{q[e]}, " of element ", e, " exceeds ", qmax);
    const int code = q[e] ^ x;
    const int nf = code_fields(t, e, f);
    for (int k = 0; k < nf; ++k) {
      const int mask = ((1 << f[k].width) - 1) << f[k].shift;
      const int bits = ((code >> f[k].code_shift) << f[k].shift) & mask;
      p[f[k].byte] = static_cast<uint8_t>((p[f[k].byte] & ~mask) | bits);
    }
  }
}

int grid_code(const BlockGrid& g, int e, float x) {
  const int j = e / g.sub_len;
  if (g.scale[j] == 0) return 0;
  const float v = (x - g.offset[j]) / g.scale[j];
  if (!(v > 0)) return 0;  // also NaN
  if (v >= static_cast<float>(g.qmax)) return g.qmax;
  return static_cast<int>(std::nearbyint(v));
}

}  // namespace shrink::kernels
