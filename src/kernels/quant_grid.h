// The affine view of a ggml block that GPTQ-style quantizers need: every element
// e of a block of type t decodes as
//     x[e] = scale[j] * q[e] + offset[j],   j = e / sub_len,  q[e] integer in [0, qmax]
// so a caller can fix a block's header (its scales/mins, e.g. by quantizing the
// block once with quantize_row), read the grid, choose codes one column at a time
// with its own error feedback, and write them back without touching the header.
//
//   type  sub_blocks x sub_len  qmax  scale            offset
//   Q8_0    1 x 32               255   d                -128 d    (q = int8 + 128)
//   Q4_0    1 x 32                15   d                  -8 d
//   Q4_1    1 x 32                15   d                   m
//   Q5_0    1 x 32                31   d                 -16 d
//   Q5_1    1 x 32                31   d                   m
//   Q2_K   16 x 16                 3   d*sc[j]          -dmin*m[j]
//   Q3_K   16 x 16                 7   d*(sc[j]-32)      -4 scale[j]   (q = 3-bit value + 4)
//   Q4_K    8 x 32                15   d*sc[j]          -dmin*m[j]
//   Q5_K    8 x 32                31   d*sc[j]          -dmin*m[j]
//   Q6_K   16 x 16                63   d*sc[j]          -32 scale[j]
// scale * q + offset reproduces dequantize_row bit for bit (the products involved
// are exact in f32, or are the very operations the dequantizers perform).
// Q8_0: ggml's own quantizer only writes -127..127 (q 1..255); q = 0 (int8 -128)
// is a valid block value that ggml's dot products handle, so it is allowed.
// IQ4_NL is not affine (16-level table) and has no grid.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace shrink::kernels {

struct BlockGrid {
  int sub_blocks;  // number of sub-blocks; element e belongs to sub-block e / sub_len
  int sub_len;     // elements per sub-block (sub_blocks * sub_len = block_elems)
  int qmax;        // codes are integers 0..qmax
  float scale[16];
  float offset[16];
};

// True for the ten affine ggml types above.
bool has_block_grid(DType t);
// Reads the header (scales/mins) of one block of type t.
void block_grid(DType t, const void* block, BlockGrid* g);
// Rewrites the codes of one block (q[e] in [0, qmax], block_elems values), leaving
// its header as is. Codes above qmax are a caller bug (checked, throws).
void block_set_codes(DType t, void* block, const uint8_t* q);
// The codes of one block (the inverse of block_set_codes).
void block_get_codes(DType t, const void* block, uint8_t* q);

inline float grid_value(const BlockGrid& g, int e, int q) {
  const int j = e / g.sub_len;
  return g.scale[j] * static_cast<float>(q) + g.offset[j];
}
// The code of element e nearest to x (clamped to [0, qmax]; 0 if the sub-block's
// scale is zero, when every code gives the same value).
int grid_code(const BlockGrid& g, int e, float x);

}  // namespace shrink::kernels
