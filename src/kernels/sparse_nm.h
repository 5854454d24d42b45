// Products with a compressed N:M sparse matrix: every group of M consecutive
// columns of a row holds at most N non-zeros (2:4, 4:8, ...; M <= 16), and
// only those N values are stored, with their position inside the group.
// This is the representation of model/sparse_weight.h, the form a pruned
// Linear takes when it should also be smaller and faster (issue 5). Decode is
// memory-bound, so the product's speed follows the bytes it reads: for 2:4,
// bf16 values + 2-bit indices are 2.25 bytes per kept value against 4 bytes
// per 2 dense columns (0.5625 of dense bf16; f32: 0.53125).
//
// Layout (row-major; ours, not NVIDIA's cuSPARSELt metadata, which interleaves
// indices for its tensor cores; we only need them next to the values):
//   groups G = ceil(cols / M) (the last one may be narrower than M);
//   values: row r holds vpr = round_up(G * N, 16) values (f32 or bf16); value
//           k < G * N belongs to group k / N; values past G * N are zero.
//   indices: value k's column within its group, b = index_bits(M) bits each
//           (2 for M <= 4, 4 for M <= 16), packed little-endian into uint32
//           words: word w of a row holds values 32/b * w ..; a row has
//           vpr * b / 32 words. A group with fewer than N non-zeros stores
//           zero values (any index inside the group).
//   So value k of row r is at column M * (k / N) + index(r, k).
//
// Kernels: an AVX-512 path for the 50% patterns (M == 2N, N in {1, 2, 4, 8}:
// 16 stored values then cover exactly 32 columns, and one vpermt2ps of the
// two x vectors of those columns, indexed by the unpacked indices, lines x up
// with the values: no gather), and a scalar reference for everything (the
// only path for other N:M). Threaded over rows like the dense GEMV
// (row_slabs.h). n > 1 tokens: a multi-token kernel that unpacks the indices
// once for several tokens, and beyond a few tokens widening to dense panels +
// oneDNN sgemm (as the other non-f32 weights do).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace shrink::kernels {

struct NmShape {
  int n = 2, m = 4;  // keep n of every m
  int64_t rows = 0, cols = 0;

  int64_t groups() const { return (cols + m - 1) / m; }
  int index_bits() const { return m <= 4 ? 2 : 4; }
  int64_t values_per_row() const { return (groups() * n + 15) / 16 * 16; }
  int64_t index_words_per_row() const { return values_per_row() * index_bits() / 32; }
  // True when the AVX-512 path handles this pattern (M == 2N, 16 values = 32 columns).
  bool half_pattern() const { return m == 2 * n && (n == 1 || n == 2 || n == 4 || n == 8); }
};

// Throws unless 0 < n < m <= 16 and rows, cols > 0.
void check_nm_shape(const NmShape& s);

// Column of value k of a row whose index words are `idx`.
inline int64_t nm_column(const NmShape& s, const uint32_t* idx, int64_t k) {
  const int b = s.index_bits(), per_word = 32 / b;
  const uint32_t i = (idx[k / per_word] >> (b * (k % per_word))) & ((1u << b) - 1);
  return int64_t(s.m) * (k / s.n) + i;
}

// y[r] = sum_c W[r, c] x[c]; values of dtype vtype (F32 or BF16).
void nm_gemv(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* x, float* y);
// nm_gemv() on exactly `threads` threads (contiguous row slabs); threads <= 1 runs here.
void nm_gemv_threads(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* x, float* y,
                     int threads);
// Scalar reference (double accumulation) that the SIMD paths are tested against.
void nm_gemv_ref(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* x, float* y);
// "avx512" when the AVX-512 path handles this pattern on this CPU, else "scalar".
const char* nm_gemv_isa(const NmShape& s);

// y[n x rows] = x[n x cols] W^T for any n.
void nm_matmul(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* x, float* y,
               int64_t n);

// out[r * cols + c] = W[r, c] as f32 for r in [0, s.rows) (zeros included).
void nm_unpack(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, float* out);

// AVX-512 kernels behind the above (exposed for the tests; call only when the
// CPU has AVX-512F/BW/VL and s.half_pattern()). x is zero-padded to
// padded_cols(s) columns per token (the last 32-column window may pass cols).
int64_t nm_padded_cols(const NmShape& s);
// y[i] for rows [0, s.rows) of the matrix at values/idx (s.rows may be a slab).
void nm_rows_avx512(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* xpad,
                    float* y);
// y[t * ldy + i] for t < ntok, rows [0, s.rows); x token stride nm_padded_cols(s).
void nm_tokens_avx512(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* xpad,
                      int64_t ntok, float* y, int64_t ldy);

}  // namespace shrink::kernels
