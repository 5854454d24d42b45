// SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can
// Be Accurately Pruned in One-Shot", Alg. 1). The OBS column sweep of GPTQ
// (compress/calib/obs.h: H = 2XᵀX/N + dampening, upper Cholesky factor U of
// H⁻¹, lazy column blocks) where a column is replaced by its masked copy
// instead of its rounded one, so the error of every pruned weight is
// compensated by the weights of later columns. The mask is chosen adaptively
// from the already-updated weights with the OBS saliency w² / U_ii²:
//   unstructured  at the start of each lazy block of B columns, the lowest
//                 fraction s of the block's rows x B scores (paper §3.2,
//                 "adaptive mask selection");
//   N:M           at every M-th column, per row, the M - N lowest of the next M.
#pragma once
#include <cstdint>
#include <vector>

#include "compress/prune/mask.h"
#include "core/tensor.h"

namespace shrink::prune {

struct SparseGptOptions {
  float damp = 0.01f;   // fraction of mean diag(H) added to the diagonal (percdamp)
  int64_t block = 128;  // lazy block width (rounded up to a multiple of M for N:M)
};

struct SparseGptResult {
  Tensor weight;          // f32 {rows, cols}, pruned and reconstructed
  double damp_used = 0;   // dampening that made H positive definite
};

// w: f32 {rows, cols}; h: cols x cols (calib::Hessian::matrix()).
SparseGptResult sparsegpt_prune(const Tensor& w, std::vector<float> h, const SparsityPattern& p,
                                const SparseGptOptions& opt);

}  // namespace shrink::prune
