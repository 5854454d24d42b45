// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate
// Post-Training Quantization for Generative Pre-trained Transformers", Alg. 1).
// Columns are quantized one at a time; each one's rounding error, scaled by
// the inverse Hessian's Cholesky factor, is pushed onto the columns not yet
// quantized (within a lazy block of B columns immediately, beyond it as one
// GEMM per block). Options as in the reference implementation: dampening
// (a fraction of mean diag(H)), activation order (columns by decreasing
// diag(H)), groups. With activation order the group/block scales are fixed up
// front from the original weights ("static groups"), so the result is stored
// in the natural column order and no permutation is kept in the file (ggml
// blocks cannot hold one).
#pragma once
#include <memory>
#include <vector>

#include "compress/calib/obs.h"
#include "compress/quant/target.h"
#include "core/tensor.h"

namespace shrink::quant {

struct GptqOptions {
  float damp = 0.01f;  // percdamp
  int64_t block = 128;  // lazy batch width (raised to a multiple of the chunk when a chunk is wider)
  bool act_order = false;
  // Choose each block's / group's scales weighting columns by diag(H) (as an
  // importance matrix) instead of plain min/max as the reference code does.
  bool weighted_scales = false;
};

struct GptqResult {
  std::shared_ptr<WeightRepr> weight;
  double damp_used = 0;  // dampening that made H positive definite (raised from opt.damp if needed)
};

// w: f32 {rows, cols}; h: cols x cols (Hessian::matrix()).
GptqResult gptq_quantize(const Tensor& w, std::vector<float> h, const QuantTarget& target, const GptqOptions& opt);

// tr((W - Q) H (W - Q)^T) / tr(W H W^T) (compress/calib/obs.h).
using calib::relative_output_error;

}  // namespace shrink::quant
