// W8A8 weights (DESIGN.md §2: "W8A8 int8" and "int8 + outlier columns"):
// int8 codes with one scale per output channel (symmetric, absmax / 127), and
// activations rounded to int8 at every product, either per token (dynamic:
// each row's absmax / 127) or with one static scale per tensor fixed by
// calibration (compress/actquant). Products are exact int32 sums
// (kernels/int8_gemm.h).
//
// LLM.int8() (Dettmers et al. 2022) as bitsandbytes runs it at inference with
// int8 weights: the input columns holding any |x| >= outlier_threshold in the
// current batch are taken out of the int8 product and multiplied in f32 with
// the dequantized int8 weight columns; the paper's fp16 weight copy for those
// columns is not kept (the weight precision is the int8 one in both parts).
//
// Saved as compressed-tensors "int-quantized" (io/compressed_tensors.h):
// int8_weight_to_file / int8_weight_from_file below.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/int8_gemm.h"
#include "model/linear.h"

namespace shrink {

struct Int8Activations {
  float static_scale = 0;        // > 0: one scale for every token (static W8A8); 0: per token
  float outlier_threshold = 0;   // > 0: LLM.int8() mixed-precision decomposition (per-token int8 part)
};

class Int8Weight : public WeightRepr {
 public:
  // w: f32 {out, in}, rounded per output row.
  Int8Weight(const Tensor& w, Int8Activations act);
  // From stored codes {rows x cols, row-major} and one scale per row (a file's
  // weight / weight_scale); value = codes[r][c] * scales[r].
  Int8Weight(int64_t rows, int64_t cols, std::vector<int8_t> codes, std::vector<float> scales, Int8Activations act);

  int64_t out_features() const override { return rows_; }
  int64_t in_features() const override { return cols_; }
  void matmul(const float* x, float* y, int64_t n) const override;
  int64_t bytes() const override;
  std::string kind() const override;
  Tensor to_dense_f32() const override;

  const Int8Activations& activations() const { return act_; }
  const std::vector<int8_t>& codes() const { return q_; }
  const std::vector<float>& scales() const { return scale_; }

 private:
  void check_activations() const;
  kernels::Int8Rows view() const { return {q_.data(), scale_.data(), row_sum_.data(), rows_, cols_}; }
  void matmul_with_outliers(const float* x, float* y, int64_t n) const;

  int64_t rows_, cols_;
  Int8Activations act_;
  std::vector<int8_t> q_;
  std::vector<float> scale_;
  std::vector<int32_t> row_sum_;
};

struct ModelFile;
// Writes w into m as linear `base` ("blk.0.attn_q"): base.weight becomes the
// I8 codes, base.weight_scale the per-row scales {rows, 1}, base.input_scale
// the static activation scale {1} (absent for per-token); m.int8[base] is set.
void int8_weight_to_file(const Int8Weight& w, const std::string& base, ModelFile& m);
// The int-quantized linear `base` of m (listed in m.int8) as an Int8Weight.
std::shared_ptr<Int8Weight> int8_weight_from_file(const ModelFile& m, const std::string& base);

}  // namespace shrink
