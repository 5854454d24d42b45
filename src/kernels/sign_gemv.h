// Products with packed sign matrices: S in {-1, +1} (1 bit per weight, OneBit,
// Xu et al. 2024) or S in {-1, 0, +1} (ternary, two bit-planes). These are the
// inner products of model/sign_weight.h, which applies its rank-1 scales
// around them (W = diag(h) S diag(g): y = h * (S (g * x))). No multiplications
// are needed: a row's dot product is a sum of the x values it selects.
//
// Layout (row-major, every row a whole number of 64-bit words):
//   Binary:  row r is words_per_row = ceil(cols / 64) words; bit j of word k
//            is column 64k + j; 1 = +1, 0 = -1.
//   Ternary: row r is 2 * words_per_row words; words 2k and 2k+1 are the
//            "+1" and "-1" planes of columns 64k..64k+63 (never both set; a
//            column in neither is 0).
// Bits past `cols` in a row's last word must be zero.
//
// AVX-512 (masked adds straight from the bit masks), AVX2 and a scalar
// reference, chosen at run time (SHRINK_ISA caps it), threaded over rows.
#pragma once
#include <cstdint>

namespace shrink::kernels {

enum class SignCode : uint8_t { Binary, Ternary };

inline int64_t sign_words_per_row(int64_t cols) { return (cols + 63) / 64; }
// uint64 words one row occupies.
inline int64_t sign_row_words(SignCode code, int64_t cols) {
  return sign_words_per_row(cols) * (code == SignCode::Ternary ? 2 : 1);
}

// y[r] = sum_c S[r, c] x[c] for r in [0, rows).
void sign_gemv(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols);
// sign_gemv() on exactly `threads` threads (contiguous slabs of rows); threads <= 1 runs here.
void sign_gemv_threads(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols,
                       int threads);
// Scalar reference (double accumulation) that every SIMD path is tested against.
void sign_gemv_ref(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols);
// "avx512", "avx2" or "scalar".
const char* sign_gemv_isa();

// y[n x rows] = x[n x cols] S^T for any n (prefill): up to a threshold
// (sign_gemv.cpp, measured) tokens go through a multi-token kernel (AVX-512:
// each bit mask applied to 4 tokens; elsewhere the GEMV per token); more
// widen panels of S to f32 (+-1/0) and run oneDNN sgemm on them.
void sign_matmul(SignCode code, const uint64_t* S, const float* x, float* y, int64_t n, int64_t rows, int64_t cols);

// out[r * cols + c] = S[r, c] as f32, for r in [0, rows) (dispatching, and the reference).
void sign_unpack(SignCode code, const uint64_t* S, float* out, int64_t rows, int64_t cols);
void sign_unpack_ref(SignCode code, const uint64_t* S, float* out, int64_t rows, int64_t cols);

// Per-ISA single-threaded kernels behind the above, exposed so the tests can
// run each one on this machine whatever SHRINK_ISA says. Only call them when
// the CPU has the ISA (AVX-512F/BW/VL; AVX2).
void sign_rows_avx512(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols);
void sign_rows_avx2(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols);
// y[t * ldy + r] = sum_c S[r, c] x[t * cols + c] for t < n, r < rows.
void sign_tokens_avx512(SignCode code, const uint64_t* S, const float* x, int64_t n, float* y, int64_t ldy,
                        int64_t rows, int64_t cols);
void sign_unpack_avx512(SignCode code, const uint64_t* S, float* out, int64_t rows, int64_t cols);
void sign_unpack_avx2(SignCode code, const uint64_t* S, float* out, int64_t rows, int64_t cols);

}  // namespace shrink::kernels
