// AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM
// Compression and Acceleration"), as its reference code (llm-awq auto_scale /
// auto_clip) runs it, over shrink's calibration driver:
//  1. per group of Linears sharing an input, search s = mean|x|^alpha
//     (alpha on a grid in [0, 1), normalised by sqrt(max s * min s)) for the
//     least squared output error of Q(W * s) / s on sampled calibration rows;
//     alpha = 0 is plain RTN, so the search never does worse on its own loss;
//  2. fold 1/s into the operation producing the input (the RMSNorm/LayerNorm
//     weight, or the rows of v (for o) / up (for down)), multiply W by s; a
//     group whose input comes through a nonlinearity (GPT-2's GELU before
//     down) or a GQA-shared v is left unscaled;
//  3. clip: per row and block/group, shrink the range to (1 - i/grid) of its
//     max (i < grid/2) for the least output error on 512 sampled rows
//     (q and k are not clipped, as in the reference);
//  4. quantize every Linear of the block by round to nearest.
// Simplification against the reference: the scale search measures the error
// of the group's own Linear outputs, not of the whole attention / MLP module
// (llm-awq's module2inspect); said in docs/quantization.md.
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "compress/calib/calib.h"
#include "compress/calib/stats.h"
#include "compress/quant/quantize.h"

namespace shrink::quant {

class AwqMethod : public calib::BlockMethod {
 public:
  AwqMethod(const QuantizeOptions& opt, QuantizeReport& rep, bool head, int64_t calib_tokens);
  void begin_group(Transformer& model, int layer, const std::vector<Linear*>& group) override;
  void observe(const Linear& l, const float* x, int64_t n) override;
  void rewrite(Transformer& model, int layer, const std::vector<Linear*>& group) override;
  bool wants_head() const override { return head_; }

 private:
  void search_scale(Transformer& model, int layer, const std::vector<Linear*>& group);
  void clip(Linear& l, bool head);
  void finish_block(Transformer& model, int layer);

  const QuantizeOptions& opt_;
  QuantizeReport& rep_;
  bool head_;
  int64_t stride_ = 1;   // keep every stride-th calibration row
  int64_t seen_ = 0;     // rows seen this group
  const Linear* first_ = nullptr;
  calib::ColumnStats stats_;
  std::vector<float> sample_;  // kept rows, in_features each
  // The block's weights as f32 copies while they are scaled and clipped (the
  // Linears point at these tensors); quantized together at the end of the block.
  std::map<const Linear*, Tensor> float_;
  struct ScaleChoice { double alpha = -1, loss_ratio = -1; };
  std::map<const Linear*, ScaleChoice> chosen_;  // for the report
};

}  // namespace shrink::quant
