// Quantization-aware training toward a real format (`shrink qat`): the fake
// quantization of every tensor `shrink quantize --type T` would quantize,
// each rounded in the forward exactly as its writer will round it, and the
// export of the trained model into that format.
//
// Per tensor (the plan follows quant::type_options, so QAT and the RTN
// baseline quantize the same tensors into the same types):
//   LSQ   the block Linears when --lsq and the target is intBgGsym (f32
//         scales) or q4_0 (= int4g32sym with f16 scales, train/fake_quant.h):
//         learned steps, initialised from the RTN quantizer's scales (ggml's
//         signed d for Q4_0), exported as GroupQuantWeight / Q4_0 blocks.
//   RTN   everything else (the head, the embedding table, and every tensor
//         without --lsq): the forward is the writer's own round trip,
//         dequantize(quantize_matrix(t, w)) — ggml's quantizers for block
//         types (Q2_K's scale search included), shrink's group quantizer —
//         recomputed from the current weights every step, with the
//         straight-through estimator (identity gradient; Bengio et al. 2013).
//         The export calls the same quantizer on the final weights.
// Either way the exported weights dequantize to the fake-quant forward's
// weights bit for bit (tests/qat_export_test.cpp).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compress/quant/quantize.h"
#include "model/transformer.h"
#include "train/fake_quant.h"
#include "train/llama_graph.h"

namespace shrink::train {

// Whether LSQ (learned scales) can be exported exactly into t: intBgGsym and q4_0.
bool qat_lsq_supports(const quant::QuantTarget& t);
// Throws, saying why, for targets `shrink qat` cannot train toward exactly
// (dense types, OneBit sign formats; with lsq, anything but qat_lsq_supports).
void check_qat_target(const quant::QuantTarget& t, bool lsq);

// What the exported model's kernels do to each quantized Linear's input,
// replayed in the forward (`shrink qat --act-quant`):
//   None     inputs stay f32: the numerics of shrink's prefill, whose
//            quantized matmuls dequantize the weights for n >= 16..128 rows.
//   Runtime  the rounding of the quantized-weight kernels that decode (and
//            llama.cpp's CPU backend at every batch size) multiply with:
//            ggml's Q8_0 / Q8_1 per 32 values with an f16 scale for 32-blocks,
//            Q8_K per 256 for K-quants, shrink's int8 per 16 packed words for
//            int2/4/8 group formats (kernels/qdot.h, kernels/group_gemv.h);
//            nothing where the kernel multiplies f32 (dense fallbacks, 3/5/6/7-bit
//            groups). Straight-through gradient, as for the weights.
enum class QatActivations { None, Runtime };

class QatQuantizer : public WeightQuantizer {
 public:
  // opt: what to quantize into (quant::type_options, plus --keep-head/--keep-embed).
  QatQuantizer(TransformerParams& model, const quant::QuantizeOptions& opt, bool lsq,
               QatActivations act = QatActivations::None);

  bool covers(const std::string& weight_name) const override { return plan_.count(weight_name) > 0; }
  Var apply(Graph& g, const std::string& weight_name, Var w) override;
  Var apply_input(Graph& g, const std::string& weight_name, Var x) override;
  // LSQ's steps (empty without LSQ): trained beside the weights, without weight decay.
  std::vector<Parameter*> params() { return lsq_ ? lsq_->params() : std::vector<Parameter*>{}; }

  // Each covered tensor and what it becomes ("q4_0 lsq", "q6_k rtn", ...), in model order.
  std::vector<std::pair<std::string, std::string>> plan() const;
  // Starts from another quantization of the same model (e.g. GPTQ's): each
  // covered Linear's master weights become q's dequantized weights and, for
  // LSQ, its steps become q's scales (so the first forward is that model).
  void start_from(TransformerParams& model, Transformer& q);

  // The exported model: p's current values, every covered tensor replaced by
  // its quantized form (dequantizing to the fake-quant forward's weights).
  // `base` supplies the tokenizer and metadata and must outlive the result.
  std::unique_ptr<Transformer> export_model(TransformerParams& p, ModelFile& base) const;

 private:
  // One input row [cols] as the exported kernel rounds it (QatActivations::Runtime).
  using InputRounding = std::function<void(const float* x, float* out)>;
  struct Entry {
    quant::QuantTarget target;  // after fit_target (ggml's fallback for rows that do not split into blocks)
    bool lsq = false, embedding = false;
    InputRounding round_input;  // empty: the input stays f32
  };
  static InputRounding runtime_rounding(const quant::QuantTarget& t, const Tensor& w);
  std::map<std::string, Entry> plan_;
  std::vector<std::string> order_;
  std::unique_ptr<FakeQuant> lsq_;  // the LSQ-covered block Linears
  bool q4_0_ = false;               // LSQ toward Q4_0 (f16 steps, exported as blocks)
};

// The writer's round trip of one tensor: an embedding table is stored as
// w.to(t.block) (quant::quantize_model's embedding path), a Linear as
// quantize_matrix(t, w); both returned as f32 values.
Tensor rtn_round_trip(const quant::QuantTarget& t, const Tensor& w, bool embedding);
// The fake-quantized w through rtn_round_trip with a straight-through (identity) gradient.
Var fake_quant_target(Var w, const quant::QuantTarget& t, bool embedding);
// Each row of x [n x cols] through `round_row`, with a straight-through (identity) gradient.
Var fake_quant_rows(Var x, const std::function<void(const float*, float*)>& round_row);

// Perplexity of the training graph (with its fake quantization) under
// eval::perplexity's protocol: windows of n_ctx tokens, the first replaced by
// bos, positions n_ctx/2 .. n_ctx-2 scored; the first `chunks` windows (-1: all).
struct GraphPerplexity {
  double ppl = 0, nll = 0;
  int64_t scored = 0;
  int chunks = 0;
};
GraphPerplexity graph_perplexity(TransformerParams& p, const GraphOptions& opt, const std::vector<int32_t>& tokens,
                                 int n_ctx, int chunks, int32_t bos);

}  // namespace shrink::train
