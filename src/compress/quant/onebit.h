// OneBit weight quantization (Xu et al. 2024, "OneBit: Towards Extremely
// Low-bit Large Language Models") and a ternary variant, post-training only:
// W ~= diag(h) S diag(g) with S = sign(W) packed 1 bit per weight (ternary: S
// in {-1, 0, +1}) and f16 scale vectors h (out) and g (in), stored as
// model/sign_weight.h. The paper initialises S, h, g by its Sign-Value-
// Independent Decomposition (SVID, §3.3) and then trains them by knowledge
// distillation from the f16 model (§3.4); here only the SVID is done (as
// rtn/imatrix, or under GPTQ's error feedback), so quality is far below the
// paper's distilled models.
//
// SVID: S = sign(W); |W| ~= a b^T by its best rank-1 approximation (the
// paper's SVD; here power iteration, which for a non-negative matrix
// converges to the Perron singular pair, so a, b >= 0); h = a, g = b. Since
// W - diag(h) S diag(g) = S o (|W| - h g^T) entrywise, the rank-1 SVD of |W|
// is the least-squares optimum of h, g given S = sign(W), and sign(W) is the
// best S for any h, g >= 0: the pair is already a fixed point of alternating
// least squares, so no further refinement of onebit is done.
//
// Importance (per input column, llama.cpp imatrix style mean x^2; nullable)
// weights the squared error of column c by imp[c]: the rank-1 fit is that of
// |W| diag(sqrt(imp)), unscaled. (Only h depends on it: given h, each g[c]
// is a per-column least-squares fit that the column's weight does not change.)
//
// Ternary: for fixed scales, zeroing entry (r, c) lowers its squared error
// exactly when |W[r,c]| < h[r] g[c] / 2 (error W^2 instead of (|W| - h g)^2),
// so the zero mask needs no search: starting from the onebit scales, the mask
// and a weighted least-squares refit of g, then h, on the kept entries are
// alternated (each step minimises the weighted error over its part, so the
// error never rises and the ternary error is at most the onebit one) until
// the mask stops changing or `ternary_rounds` is reached (a local optimum;
// Lloyd's algorithm for a 3-level quantizer when h, g are constant).
//
// Both: h is rounded to f16, g refitted to the rounded h and rounded, and
// (ternary) the mask updated to the rounded scales.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "compress/quant/target.h"
#include "core/tensor.h"
#include "kernels/sign_gemv.h"
#include "model/sign_weight.h"

namespace shrink::quant {

struct OneBitOptions {
  int power_iters = 200;     // power-iteration steps at most (stops when the vector settles)
  int ternary_rounds = 30;   // mask / scale alternations at most
};

// The fitted factors of W ~= diag(h) S diag(g) (signs: rows x cols in {-1, 0, +1}).
struct SignFit {
  std::vector<int8_t> signs;
  std::vector<float> h, g;  // already rounded to f16 values
};

// Fits W (f32 {rows, cols}) as described above. importance: cols values >= 0 or null.
SignFit fit_signs(const Tensor& w, kernels::SignCode code, const float* importance, const OneBitOptions& opt = {});

// fit_signs packed into a SignWeight.
std::shared_ptr<SignWeight> onebit_quantize(const Tensor& w, kernels::SignCode code, const float* importance,
                                            const OneBitOptions& opt = {});

// Rank-1 fit |W| ~= h g^T of a non-negative rows x cols matrix (row-major),
// column c weighted by importance[c] (nullable): power iteration, then g by
// least squares given h, balanced so h and g have the same rms.
void rank1_fit(const float* a, int64_t rows, int64_t cols, const float* importance, int iters, std::vector<float>& h,
               std::vector<float>& g);

// sum_c imp[c] sum_r (W[r,c] - Q[r,c])^2 (imp null: all 1).
double weighted_sq_error(const Tensor& w, const Tensor& q, const float* importance);

// ColumnQuantizer for GPTQ (chunk = the whole row): choose() runs the SVID
// fit above on the whole matrix once and keeps h; round_column(c) sets
// S[:, c] = sign(w) (ternary: the mask rule above) for the error-fed column
// w and refits that column's g[c] to it by least squares given h (g[c] only
// affects column c, so it can be chosen as the column is rounded).
std::unique_ptr<ColumnQuantizer> make_sign_column_quantizer(kernels::SignCode code, int64_t rows, int64_t cols);

}  // namespace shrink::quant
