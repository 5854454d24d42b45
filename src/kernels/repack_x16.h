// Q4_0 and Q4_K weights repacked sixteen rows at a time for the decode GEMV.
//
// ggml's row layouts (per block: scales, then the row's code bytes) make a
// SIMD dot product spend most of its work moving bytes: each row's blocks
// must be split, their scales gathered, and lanes summed across at the end
// (qdot_avx512.cpp's Q4_0 kernel computes ~25-30 Gweights/s per core from
// L2, only about twice the rate DRAM delivers Q4_0, so decode reached 65-70%
// of the bandwidth bound). Interleaving the rows instead, as llama.cpp's CPU
// "repack" buffers do for the same reason, lets one 32-bit lane own one row:
// a 64-byte load holds four code bytes of each of 16 rows, the activation's
// matching four codes are one broadcast, and vpdpbusd accumulates sixteen
// row sums with no shuffles and no horizontal reduction. The layouts below
// are our own; a tile holds exactly the bytes of the ggml blocks it replaces
// (each group of rows may end in one cache line of padding: group_stride).
//
// Status: twice the ggml kernels' compute rate from L2; since session 10 it
// streams from DRAM about as fast as they do (decode within noise of them),
// and the copy doubles the weights' RAM, so BlockWeight only uses it with
// SHRINK_REPACK=1 (docs/quantization.md, "The repacked layout revisited").
//
// Rows go in groups of 16; a group is a run of tiles over the row's columns.
//   Q4_0 tile (576 bytes): two 32-value blocks
//     codes[2][4][16][4]   block b, word k, row i: code bytes 4k..4k+3 of row i's block
//     d[2][16]             f16 scale of block b of row i
//     A row with an odd number of blocks gets a zero block (codes 0, scale 0).
//   Q4_K tile (2304 bytes): one 256-value super-block
//     codes[4][8][16][4]   chunk c, word k, row i: qs bytes 32c+4k..+3 of row i
//     scales[3][16][4]     packed 6-bit scales/mins, bytes 4j..4j+3 of row i
//     d[16], dmin[16]      f16
// Rows past the last whole group are not repacked: callers run them from the
// original layout.
//
// The products are ggml's vec_dot_q4_0_q8_0 / vec_dot_q4_K_q8_K: exact
// integer code products per (sub-)block, then f32 scaling, with activations
// quantized as qgemv does (Q8_0 / Q8_K). Only the order of the f32
// additions differs from qgemv.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace shrink::kernels {

constexpr int64_t kX16Rows = 16;

// Whether wtype has a repacked form (Q4_0, Q4_K).
bool x16_supported(DType wtype);
// Whether this CPU runs the repacked kernels (AVX-512 VNNI; honours SHRINK_ISA
// like qdot_isa). When false, callers keep using qgemv.
bool x16_available();
// Bytes of the repacked form of the first rows / 16 * 16 rows of a {rows, cols} matrix.
int64_t x16_bytes(DType wtype, int64_t rows, int64_t cols);
// Writes the repacked form of W's whole groups of 16 rows to out (x16_bytes).
void x16_repack(DType wtype, const void* W, int64_t rows, int64_t cols, void* out);
// Row r of the repacked form back in ggml's layout (tests).
void x16_unpack_row(DType wtype, const void* P, int64_t r, int64_t cols, void* row);

// y[r] = dot(W[r,:], x) for r < rows (a multiple of 16) from the repacked P,
// x quantized once, rows split over `threads` threads in slabs of whole
// groups. Results do not depend on the thread count.
void x16_gemv_threads(DType wtype, const void* P, const float* x, float* y, int64_t rows, int64_t cols, int threads);
// As above with decode_threads' choice of thread count.
void x16_gemv(DType wtype, const void* P, const float* x, float* y, int64_t rows, int64_t cols);
// One input against several repacked matrices of one type and width (decode's
// q/k/v, gate/up), as qgemv_parts does for the ggml layout: x quantized once,
// all parts' rows (each a multiple of 16) split over the threads in one pass.
// Each row is computed as x16_gemv computes it.
struct X16Part {
  const void* P;
  float* y;
  int64_t rows;
};
void x16_gemv_parts(DType wtype, const X16Part* parts, int n_parts, const float* x, int64_t cols);
// Scalar reference of x16_gemv (the SIMD path's exact arithmetic and f32 order).
void x16_gemv_ref(DType wtype, const void* P, const float* x, float* y, int64_t rows, int64_t cols);

}  // namespace shrink::kernels
