// Products with a bitmask sparse matrix, for high unstructured sparsity
// (60-90% zeros, where N:M does not apply and CSR's 4-byte column indices
// would cost as much as the values): every row is cut into groups of 16
// columns; a group stores a 16-bit mask of its non-zero columns and, packed
// in column order, only those values. The bytes per weight are
// 2/16 + 4 * density (f32 values): at 70% zeros 1.325 against dense f32's 4
// (0.33x), at 50% 2.125 (0.53x); break-even with dense f32 at ~3% zeros.
// A layout of ours (the idea is SparTA's / DeepSparse's bitmask formats and
// the AVX-512 "expand" load that was made for it), not a standard file format.
//
// Layout (row-major):
//   groups G = ceil(cols / 16); the last group may be narrower (its mask bits
//   past cols are 0);
//   masks: rows x G uint16, bit j of group g set = column 16 g + j is stored;
//   values: the stored values of row 0, then row 1, ...; row r's start is
//   row_start[r] (rows + 1 prefix offsets, row_start[rows] = values.size()).
//
// Kernels: a scalar reference (double accumulation), and an AVX-512 path that
// decodes a group with one vexpandps (_mm512_maskz_expandloadu_ps: the group's
// packed values spread to the lanes of its mask, zeros elsewhere) and one FMA
// against the group's 16 x values; the value pointer then advances by
// popcount(mask). Threaded over rows like the dense GEMV (row_slabs.h).
// In a model and in GGUF files: model/sparse_mask_weight.h.
#pragma once
#include <cstdint>
#include <vector>

namespace shrink::kernels {

struct MaskMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<uint16_t> masks;     // rows x groups()
  std::vector<int64_t> row_start;  // rows + 1 offsets into values
  std::vector<float> values;       // the stored (non-zero) values, row by row, in column order

  int64_t groups() const { return (cols + 15) / 16; }
  // Bytes of the masks and values (the row offsets, 8 bytes per row, not counted).
  int64_t bytes() const { return int64_t(masks.size()) * 2 + int64_t(values.size()) * 4; }
};

// The bitmask form of the row-major rows x cols matrix w: every non-zero is stored.
MaskMatrix mask_pack(const float* w, int64_t rows, int64_t cols);
// out[r * cols + c] = W[r, c] (zeros included).
void mask_unpack(const MaskMatrix& m, float* out);
// Rows [r0, r0 + nr) of W as f32 into out (nr x cols): the panels of mask_matmul's
// several-token path. AVX-512: one vexpandps + store per 16 columns; else the scalar
// bit loop mask_unpack_rows_ref (tested against each other).
void mask_unpack_rows(const MaskMatrix& m, int64_t r0, int64_t nr, float* out);
void mask_unpack_rows_ref(const MaskMatrix& m, int64_t r0, int64_t nr, float* out);
// Call only when the CPU has AVX-512F.
void mask_unpack_rows_avx512(const MaskMatrix& m, int64_t r0, int64_t nr, float* out);

// y[r] = sum_c W[r, c] x[c].
void mask_gemv(const MaskMatrix& m, const float* x, float* y);
// mask_gemv() on exactly `threads` threads (contiguous row slabs); threads <= 1 runs here.
void mask_gemv_threads(const MaskMatrix& m, const float* x, float* y, int threads);
// y[n x rows] = x[n x cols] W^T: the GEMV for one token, else f32 panels of W
// (unpacked) + oneDNN sgemm, as the other non-f32 weights do.
void mask_matmul(const MaskMatrix& m, const float* x, float* y, int64_t n);
// Scalar reference (double accumulation) that the SIMD path is tested against.
void mask_gemv_ref(const MaskMatrix& m, const float* x, float* y);
// "avx512" when this CPU runs the AVX-512 path, else "scalar".
const char* mask_gemv_isa();

// The AVX-512 kernel behind mask_gemv (exposed for the tests; call only when
// the CPU has AVX-512F): y[r - r0] for rows [r0, r1).
void mask_rows_avx512(const MaskMatrix& m, int64_t r0, int64_t r1, const float* x, float* y);

}  // namespace shrink::kernels
