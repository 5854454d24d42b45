// Repacking of Q4_0 / Q4_K rows into 16-row tiles, the scalar reference
// GEMVs, and the dispatch to the AVX-512 VNNI kernels (repack_x16_avx512.cpp).
// Layouts: repack_x16.h.
#include "kernels/repack_x16.h"

#include <cmath>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "kernels/qdot.h"
#include "kernels/repack_x16_impl.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

namespace {

using x16_impl::ActQ8_0;
using x16_impl::ActQ8_K;

// Where the bytes of a ggml block go in a tile: `len` bytes from offset
// `src` of block b of row i land at dst + b * dst_block_stride, then either
// as 4-byte words interleaved by row (word w of row i at 64 w + 4 i) or as
// one 2-byte value per row (at 2 i).
struct Segment {
  int src, len, dst, dst_block_stride;
  bool words;
};
struct TileLayout {
  int64_t tile_bytes, blocks_per_tile;
  std::vector<Segment> segments;
};

const TileLayout& layout(DType t) {
  static const TileLayout q4_0{x16_impl::kQ4_0TileBytes, 2, {{2, 16, 0, 256, true}, {0, 2, 512, 32, false}}};
  static const TileLayout q4_k{x16_impl::kQ4_KTileBytes, 1,
                               {{16, 128, 0, 0, true}, {4, 12, 2048, 0, true}, {0, 2, 2240, 0, false}, {2, 2, 2272, 0, false}}};
  SHRINK_CHECK(x16_supported(t), "repacked GEMV: no 16-row layout for ", dtype_name(t));
  return t == DType::Q4_0 ? q4_0 : q4_k;
}

int64_t tiles_per_row(DType t, int64_t cols) {
  const int64_t blocks = cols / dtype_traits(t).block_elems, per = layout(t).blocks_per_tile;
  return (blocks + per - 1) / per;
}

// Bytes from one group of rows to the next: its tiles, plus one cache line
// when that makes the stride an odd number of lines. The decode kernel walks
// several groups a fixed number of groups apart at once; with an odd stride
// (and an odd distance, groups_in_runs) no two of those streams share their
// address bits below 4 KiB, which would otherwise alias in L1 and cost ~20%
// of the DRAM rate (measured: 4096-column matrices, whose groups are 9 x 4 KiB).
int64_t group_stride(DType t, int64_t cols) {
  const int64_t bytes = tiles_per_row(t, cols) * layout(t).tile_bytes;
  return bytes / 64 % 2 ? bytes : bytes + 64;
}

void check_shape(DType t, int64_t rows, int64_t cols) {
  const int64_t be = dtype_traits(t).block_elems;
  SHRINK_CHECK(rows >= 0 && rows % kX16Rows == 0, "repacked GEMV: rows must be a multiple of 16, got ", rows);
  SHRINK_CHECK(cols > 0 && cols % be == 0, "repacked GEMV: ", dtype_name(t), " rows need a multiple of ", be,
               " columns, got ", cols);
}

// Copies segment bytes between a block (row i, block b of its tile) and a
// tile, in the direction `to_tile` says.
void move_block(const TileLayout& l, uint8_t* tile, uint8_t* block, int64_t b, int64_t i, bool to_tile) {
  for (const Segment& s : l.segments)
    for (int j = 0; j < s.len; j += s.words ? 4 : 2) {
      uint8_t* t = tile + s.dst + b * s.dst_block_stride + (s.words ? j / 4 * 64 + i * 4 : i * 2);
      const size_t n = s.words ? 4 : 2;
      if (to_tile)
        std::memcpy(t, block + s.src + j, n);
      else
        std::memcpy(block + s.src + j, t, n);
    }
}

// The activation quantized as qgemv does, laid out for the kernels; blocks
// past the row's end (a Q4_0 pad block) are zero.
const std::vector<ActQ8_0>& prepare_q8_0(const float* x, int64_t cols, int64_t padded, bool reference) {
  const int64_t nb = cols / kQK;
  thread_local std::vector<BlockQ8_0> q;
  thread_local std::vector<ActQ8_0> act;
  q.resize(static_cast<size_t>(nb));
  act.assign(static_cast<size_t>(padded), ActQ8_0{});
  (reference ? quantize_act_ref : quantize_act)(DType::Q4_0, x, q.data(), cols);
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(act[b].qs, q[b].qs, sizeof act[b].qs);
    int32_t sum = 0;
    for (int8_t v : q[b].qs) sum += v;
    act[b].neg8sum = -8 * sum;
    act[b].d = f16_to_f32(q[b].d);
  }
  return act;
}

const std::vector<ActQ8_K>& prepare_q8_k(const float* x, int64_t cols, bool reference) {
  const int64_t nb = cols / kQK_K;
  thread_local std::vector<BlockQ8_K> q;
  thread_local std::vector<ActQ8_K> act;
  q.resize(static_cast<size_t>(nb));
  act.resize(static_cast<size_t>(nb));
  (reference ? quantize_act_ref : quantize_act)(DType::Q4_K, x, q.data(), cols);
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(act[b].qs, q[b].qs, sizeof act[b].qs);
    act[b].d = q[b].d;
    for (int s = 0; s < 8; ++s) act[b].bsum[s] = q[b].bsums[2 * s] + q[b].bsums[2 * s + 1];
  }
  return act;
}

// Runs kernel(P of the piece, act, y of the piece, groups, tiles, stride)
// over the parts' rows in slabs of whole groups (for_part_slabs).
static_assert(kRowAlign % kX16Rows == 0, "row slabs must hold whole groups of 16 rows");
template <typename Act, typename Kernel>
void run_slabs(DType t, const X16Part* parts, int n_parts, const Act* act, int64_t cols, int threads, Kernel kernel) {
  const int64_t tiles = tiles_per_row(t, cols), stride = group_stride(t, cols);
  for_part_slabs(parts, n_parts, threads, [&](const X16Part& part, int64_t b, int64_t e) {
    kernel(static_cast<const uint8_t*>(part.P) + b / kX16Rows * stride, act, part.y + b, (e - b) / kX16Rows, tiles,
           stride);
  });
}

// The parts on `threads` threads, with the SIMD kernels or the scalar reference.
void parts_threads(DType t, const X16Part* parts, int n_parts, const float* x, int64_t cols, int threads,
                   bool reference) {
  int64_t rows = 0;
  for (int i = 0; i < n_parts; ++i) {
    check_shape(t, parts[i].rows, cols);
    rows += parts[i].rows;
  }
  SHRINK_CHECK(reference || x16_available(), "repacked GEMV: this CPU has no AVX-512 VNNI");
  if (rows == 0) return;
  if (t == DType::Q4_0)
    run_slabs(t, parts, n_parts, prepare_q8_0(x, cols, 2 * tiles_per_row(t, cols), reference).data(), cols, threads,
              reference ? x16_impl::q4_0_ref : x16_impl::q4_0_avx512);
  else
    run_slabs(t, parts, n_parts, prepare_q8_k(x, cols, reference).data(), cols, threads,
              reference ? x16_impl::q4_k_ref : x16_impl::q4_k_avx512);
}

}  // namespace

bool x16_supported(DType t) { return t == DType::Q4_0 || t == DType::Q4_K; }

bool x16_available() { return std::string_view(qdot_isa()) == "avx512vnni"; }

int64_t x16_bytes(DType t, int64_t rows, int64_t cols) {
  return rows / kX16Rows * group_stride(t, cols);
}

void x16_repack(DType t, const void* W, int64_t rows, int64_t cols, void* out) {
  check_shape(t, rows / kX16Rows * kX16Rows, cols);
  const TileLayout& l = layout(t);
  const int64_t bb = dtype_traits(t).block_bytes, nb = cols / dtype_traits(t).block_elems;
  const int64_t tiles = tiles_per_row(t, cols), groups = rows / kX16Rows, stride = group_stride(t, cols);
  auto* w = const_cast<uint8_t*>(static_cast<const uint8_t*>(W));  // only read: move_block(..., to_tile = true)
  auto* o = static_cast<uint8_t*>(out);
  std::memset(o, 0, static_cast<size_t>(x16_bytes(t, rows, cols)));  // a Q4_0 pad block: codes 0, scale 0
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t tile = 0; tile < tiles; ++tile)
      for (int64_t b = 0; b < l.blocks_per_tile && tile * l.blocks_per_tile + b < nb; ++b)
        for (int64_t i = 0; i < kX16Rows; ++i)
          move_block(l, o + g * stride + tile * l.tile_bytes,
                     w + ((g * kX16Rows + i) * nb + tile * l.blocks_per_tile + b) * bb, b, i, true);
}

void x16_unpack_row(DType t, const void* P, int64_t r, int64_t cols, void* row) {
  const TileLayout& l = layout(t);
  const int64_t bb = dtype_traits(t).block_bytes, nb = cols / dtype_traits(t).block_elems;
  const int64_t stride = group_stride(t, cols), g = r / kX16Rows, i = r % kX16Rows;
  auto* p = const_cast<uint8_t*>(static_cast<const uint8_t*>(P));  // only read: move_block(..., to_tile = false)
  for (int64_t blk = 0; blk < nb; ++blk)
    move_block(l, p + g * stride + blk / l.blocks_per_tile * l.tile_bytes, static_cast<uint8_t*>(row) + blk * bb,
               blk % l.blocks_per_tile, i, false);
}

void x16_gemv_threads(DType t, const void* P, const float* x, float* y, int64_t rows, int64_t cols, int threads) {
  const X16Part whole{P, y, rows};
  parts_threads(t, &whole, 1, x, cols, threads, false);
}

void x16_gemv(DType t, const void* P, const float* x, float* y, int64_t rows, int64_t cols) {
  x16_gemv_threads(t, P, x, y, rows, cols, decode_threads(x16_bytes(t, rows, cols)));
}

void x16_gemv_parts(DType t, const X16Part* parts, int n_parts, const float* x, int64_t cols) {
  int64_t rows = 0;
  for (int i = 0; i < n_parts; ++i) rows += parts[i].rows;
  parts_threads(t, parts, n_parts, x, cols, decode_threads(x16_bytes(t, rows, cols)), false);
}

void x16_gemv_ref(DType t, const void* P, const float* x, float* y, int64_t rows, int64_t cols) {
  const X16Part whole{P, y, rows};
  parts_threads(t, &whole, 1, x, cols, 1, true);
}

// ---------------------------------------------------------------------------
// Scalar references: the SIMD kernels' integer sums and f32 operations, in
// their order (std::fma where they fuse), so the results are bit-identical.

namespace x16_impl {

namespace {
// Byte j of the word-interleaved region at `base` for row i.
uint8_t word_byte(const uint8_t* base, int64_t i, int j) { return base[j / 4 * 64 + i * 4 + j % 4]; }
float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
}  // namespace

void q4_0_ref(const uint8_t* P, const ActQ8_0* act, float* y, int64_t groups, int64_t tiles, int64_t stride) {
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t i = 0; i < kX16Rows; ++i) {
      float acc = 0.0f;
      for (int64_t t = 0; t < tiles; ++t) {
        const uint8_t* tile = P + g * stride + t * kQ4_0TileBytes;
        for (int64_t b = 0; b < 2; ++b) {
          const ActQ8_0& a = act[2 * t + b];
          int32_t s = a.neg8sum;
          for (int j = 0; j < 16; ++j) {
            const uint8_t c = word_byte(tile + b * 256, i, j);
            s += (c & 0x0F) * a.qs[j] + (c >> 4) * a.qs[16 + j];
          }
          acc = std::fma(static_cast<float>(s), f16_at(tile + 512 + b * 32 + i * 2) * a.d, acc);
        }
      }
      y[g * kX16Rows + i] = acc;
    }
}

void q4_k_ref(const uint8_t* P, const ActQ8_K* act, float* y, int64_t groups, int64_t tiles, int64_t stride) {
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t i = 0; i < kX16Rows; ++i) {
      float acc = 0.0f;
      for (int64_t t = 0; t < tiles; ++t) {
        const uint8_t* tile = P + g * stride + t * kQ4_KTileBytes;
        const ActQ8_K& a = act[t];
        uint8_t scales[12];
        for (int j = 0; j < 12; ++j) scales[j] = word_byte(tile + 2048, i, j);
        int32_t isum = 0, msum = 0;
        for (int s = 0; s < 8; ++s) {  // sub-block s: nibble s % 2 of qs bytes 32 (s / 2) .. + 31
          int sc, m;
          k4_scale_min(s, scales, &sc, &m);
          int32_t p = 0;
          for (int j = 0; j < 32; ++j) {
            const uint8_t c = word_byte(tile, i, 32 * (s / 2) + j);
            p += (s % 2 ? c >> 4 : c & 0x0F) * a.qs[32 * s + j];
          }
          isum += sc * p;
          msum += m * a.bsum[s];
        }
        acc = std::fma(static_cast<float>(isum), f16_at(tile + 2240 + i * 2) * a.d, acc);
        acc = std::fma(-static_cast<float>(msum), f16_at(tile + 2272 + i * 2) * a.d, acc);
      }
      y[g * kX16Rows + i] = acc;
    }
}

}  // namespace x16_impl

}  // namespace shrink::kernels
