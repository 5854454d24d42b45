// Low-rank factorization of Linear weights (DESIGN.md §2: low-rank U·V):
// W {out, in} ~= U {out, r} V {r, in}, from a truncated SVD of W T where T
// is a transform of W's input side chosen by the method:
//
//  - svd:     T = I. Eckart-Young: the best rank-r approximation in the
//             Frobenius norm of W, blind to which inputs matter.
//  - asvd:    T = S = diag(mean|X_j|^alpha) (Yuan et al. 2023, "ASVD:
//             Activation-aware Singular Value Decomposition for Compressing
//             Large Language Models", §3.2): columns that meet large
//             activations weigh more; S^-1 is folded back into V.
//  - svd-llm: T = L with L L^T = X^T X (Wang et al. 2024, "SVD-LLM:
//             Truncation-aware Singular Value Decomposition for Large Language
//             Model Compression", §3.1, Theorem 3.2). Then ||(W - W')X||_F =
//             ||(W - W') L||_F, so truncating the SVD of W L is the rank-r W'
//             with the least output error on the calibration inputs, and each
//             dropped singular value is exactly the output error it costs.
//             V' = V_r^T L^-1; a singular X^T X is dampened (calib/cholesky.h).
//
// In every case the truncated SVD U_r S_r V_r^T of W T is split as
// U = U_r sqrt(S_r), V = sqrt(S_r) V_r^T T^-1, so both factors have the same
// scale (kinder to bf16 storage).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "compress/calib/calib.h"
#include "core/tensor.h"
#include "model/transformer.h"

namespace shrink::lowrank {

enum class Method { Svd, Asvd, SvdLlm };
Method parse_method(const std::string& name);  // "svd" | "asvd" | "svd-llm"; throws listing them
const char* method_name(Method m);
inline bool needs_calibration(Method m) { return m != Method::Svd; }

// The input-side transform T of W T (identity, a diagonal, or a lower
// triangular Cholesky factor), with what it takes to undo it.
struct InputTransform {
  enum class Kind { Identity, Diagonal, Lower } kind = Kind::Identity;
  int64_t cols = 0;
  std::vector<double> diag;   // Diagonal: the scales S_j > 0
  std::vector<double> lower;  // Lower: L, cols x cols row-major
  double damp_used = 0;       // Lower: dampening that made X^T X positive definite
};
InputTransform identity_transform(int64_t cols);
// ASVD: S_j = max(mean|X_j|, eps)^alpha (eps keeps never-active columns invertible).
InputTransform asvd_transform(const std::vector<float>& mean_abs, double alpha);
// SVD-LLM: the Cholesky factor of h = (2/N) X^T X (Hessian::matrix(); the
// scale does not change the truncation), dampened from `damp` if singular.
InputTransform whitening_transform(const std::vector<float>& h, int64_t cols, double damp);

// The singular values of W T (descending) and its thin singular vectors.
struct Spectrum {
  int64_t rows = 0, cols = 0;
  std::vector<double> sigma;  // k values: min(rows, cols), or fewer from decompose_randomized
  std::vector<double> u;      // rows x k row-major
  std::vector<double> v;      // cols x k row-major
  double total_energy = 0;    // ||W T||_F^2 = the sum of all sigma^2, even those not computed
};
Spectrum decompose(const Tensor& w, const InputTransform& t);  // w: f32 {out, in}
// The leading `rank` (+ oversampling) singular triplets only, by a randomized
// range finder with power iterations (Halko, Martinsson, Tropp 2011, "Finding
// Structure with Randomness", Alg. 4.4 + 5.1): a few GEMMs, a thin QR and the
// SVD of a (rank + p) x cols matrix instead of a full SVD; deterministic
// (fixed seed). Falls back to decompose() when the rank is not small.
Spectrum decompose_randomized(const Tensor& w, const InputTransform& t, int64_t rank, int power_iters);

// The smallest rank keeping at least `energy` of sum sigma^2 (energy in (0, 1]).
int64_t energy_rank(const Spectrum& s, double energy);
// floor(ratio * out * in / (out + in)): the rank whose factors hold `ratio` of
// the dense parameters; at least 1, at most min(out, in).
int64_t ratio_rank(int64_t out, int64_t in, double ratio);

// U {out, r} and V {r, in} in `dtype` (F32 or BF16) from the first r singular triplets.
std::pair<Tensor, Tensor> truncate(const Spectrum& s, const InputTransform& t, int64_t rank, DType dtype);

struct FactorizeOptions {
  Method method = Method::SvdLlm;
  double ratio = 1.0;   // kept parameter fraction of each factorized Linear
  double energy = 0;    // > 0: the rank also stops at this fraction of the spectrum's energy
  // Per-layer ratios: a Linear whose name contains the pattern uses that ratio (last match wins).
  std::vector<std::pair<std::string, double>> layer_ratios;
  double asvd_alpha = 0.5;  // ASVD's alpha (the paper's default)
  double damp = 0;          // SVD-LLM: first dampening tried (0 = none unless X^T X is singular)
  DType factor_dtype = DType::F32;
  // Randomized truncated SVD (decompose_randomized): for big models whose full
  // SVDs take minutes; the rank must come from the ratio (no --energy).
  bool randomized = false;
  int power_iters = 2;
};

struct LayerReport {
  std::string name;
  int64_t rows = 0, cols = 0;
  int64_t rank = 0;  // 0: kept dense (its rank would not have saved parameters)
  int64_t params_dense = 0, params_kept = 0;
  double energy_kept = 0;      // sum of kept sigma^2 / total, of W T
  double weight_rel_err = 0;   // ||W - W'||^2 / ||W||^2
  double output_rel_err = -1;  // on the calibration inputs (-1: no calibration)
  double damp = 0;             // SVD-LLM dampening used
  double seconds = 0;
};

struct FactorizeReport {
  std::vector<LayerReport> layers;
  int64_t calib_tokens = 0;
  double seconds = 0;
};

// Factorizes every block Linear of the model in place (the output head and the
// embedding stay as they are). Calibrated methods run on the calibration
// driver, so each group sees inputs produced by the already-factorized layers;
// plain SVD with an empty `calib` needs no data. progress(layer, n_layers, what).
FactorizeReport factorize_model(Transformer& model, const calib::CalibSet& calib, const FactorizeOptions& opt,
                                const std::function<void(int, int, const std::string&)>& progress = {});

// Replaces every low-rank Linear by its dense product U V (f32): the model
// llama.cpp can load. Returns how many were multiplied out.
int densify_lowrank(Transformer& model);

}  // namespace shrink::lowrank
