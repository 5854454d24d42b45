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
//
// Joint sparsity + quantization (paper §3.5 / Alg. 1 with quantization): with
// SparseGptOptions::quant set, each column's kept weights are also rounded to
// the target's grid in the same sweep (compress/quant/target.h's
// ColumnQuantizer, the one GPTQ uses) and the pruned ones are set to 0, so the
// error propagated onto later columns is (w - q(w)·mask) / U_ii. A block's /
// group's scales are fixed when the sweep reaches its first column, as GPTQ
// fixes them, but from the chunk's *look-ahead* (plain SparseGPT run over the
// chunk's columns on a copy: the values its kept weights will have when they
// are rounded, pruned ones as 0), not from its current values: pruning the
// chunk's first columns adds compensations to its later ones that are large
// next to rounding errors, and with scales fixed before them those kept
// weights outgrew the block's range and were clamped (issue 5: joint Q8_0 lost
// to SparseGPT alone). Per-channel / per-tensor scales (chunks wider than 1024
// columns) are fixed once from the whole plain SparseGPT result.
// The pruned weights must decode to exactly 0: the target needs a grid that
// holds 0 (see joint_zero_exact); types with a per-block minimum (Q4_1, Q5_1,
// Q2_K, Q4_K, Q5_K) are refused rather than silently losing the sparsity.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "compress/prune/mask.h"
#include "compress/quant/target.h"
#include "core/tensor.h"
#include "model/linear.h"

namespace shrink::prune {

struct SparseGptOptions {
  float damp = 0.01f;   // fraction of mean diag(H) added to the diagonal (percdamp)
  int64_t block = 128;  // lazy block width (rounded up to a multiple of M for N:M, and of the quant chunk)
  // Joint mode: also quantize every kept weight to this target in the same sweep.
  std::optional<quant::QuantTarget> quant;
  // Joint mode with this column quantizer instead of quant's (for tests: an
  // identity grid must reproduce plain SparseGPT bit for bit). The pruned
  // weights must still round to exactly 0.
  std::function<std::unique_ptr<quant::ColumnQuantizer>(int64_t rows, int64_t cols)> make_quantizer;
};

struct SparseGptResult {
  Tensor weight;          // f32 {rows, cols}, pruned and reconstructed (joint mode: the dequantized result)
  std::shared_ptr<WeightRepr> quantized;  // joint mode: the quantized weight (else null)
  double damp_used = 0;   // dampening that made H positive definite
};

// w: f32 {rows, cols}; h: cols x cols (calib::Hessian::matrix()).
SparseGptResult sparsegpt_prune(const Tensor& w, std::vector<float> h, const SparsityPattern& p,
                                const SparseGptOptions& opt);

// Whether every block/group of target t decodes some code to exactly 0, so
// that joint mode keeps the mask: Q8_0, Q4_0, Q5_0, Q3_K, Q6_K (symmetric, 0 =
// a fixed code times the scale) and every integer/NF/FP group spec (integer
// zero points; the NF4/FP grids contain 0); not the types with a free
// per-block minimum, nor OneBit sign formats. Dense targets: trivially true.
bool joint_zero_exact(const quant::QuantTarget& t);

}  // namespace shrink::prune
