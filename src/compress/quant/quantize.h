// Weight quantization of a whole model: the methods of the quantization issue
// (RTN, importance-weighted RTN, GPTQ, AWQ) over the calibration driver.
//   rtn       round to nearest, per layer, no data (ggml's reference rounding for block types)
//   imatrix   RTN weighted by each input column's mean x^2 on calibration text (llama.cpp's
//             importance matrix, collected with the unquantized model in one pass)
//   gptq      compress/quant/gptq.h, block by block, each group seeing the quantized groups' outputs
//   awq       compress/quant/awq.h
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compress/calib/calib.h"
#include "compress/quant/gptq.h"
#include "compress/quant/target.h"
#include "model/transformer.h"

namespace shrink::quant {

struct AwqOptions {
  int grid = 20;             // scale exponents alpha = 0, 1/grid, ..., (grid-1)/grid
  bool clip = true;          // weight clipping search after scaling
  int64_t sample_rows = 4096;  // calibration rows kept per input for the searches
};

struct QuantizeOptions {
  std::string method = "rtn";
  QuantTarget target;
  QuantTarget head;                 // output head (when the model has its own; tied heads stay as is)
  bool quantize_head = true;
  // Per-Linear targets by name (presets, --target-bpw), overriding target/head.
  std::map<std::string, QuantTarget> per_layer;
  // The token embedding, rounded to `embed` (a block type) when set: llama-quantize
  // stores it in the recipe's base type (a table tied to the head gets the head's).
  bool quantize_embed = false;
  QuantTarget embed;
  GptqOptions gptq;
  AwqOptions awq;
  // imatrix: per-Linear mean x^2 read from a file (io/imatrix.h) instead of collected.
  std::shared_ptr<const std::map<std::string, std::vector<float>>> importance;
};

struct LayerReport {
  std::string name, type;  // type: what the layer was stored as (after any fallback)
  int64_t rows = 0, cols = 0, bytes = 0;
  double weight_rel_err = 0;  // ||W - Q||^2 / ||W||^2
  double output_rel_err = -1;  // tr(dW H dW^T) / tr(W H W^T) when the method had H; else -1
  // AWQ: the scale exponent its search chose for this Linear's group, and the
  // group's output error at that alpha over its error at alpha = 0 (plain RTN).
  double awq_alpha = -1, awq_loss_ratio = -1;
  double seconds = 0;
};

struct QuantizeReport {
  std::string method, target;
  std::vector<LayerReport> layers;
  int64_t calib_tokens = 0;
  double seconds = 0;
};

using LayerProgress = std::function<void(int layer, int n_layers, const std::string& what)>;

// What `shrink quantize --type t` quantizes and into what (llama-quantize's
// defaults): the block Linears into t; an untied output head into Q6_K for
// ggml block types (Q8_0 for Q8_0, t itself for f16/bf16) and int8ch for
// group formats; the token embedding, for quantized block types only, into t
// (a table tied to the head: the head's type). `shrink qat` uses the same
// choice, so its output and `shrink quantize`'s cover the same tensors.
QuantizeOptions type_options(const QuantTarget& t, bool tied_embeddings);

// Quantizes every Linear of the model in place (calib may be empty for rtn).
QuantizeReport quantize_model(Transformer& model, const calib::CalibSet& calib, const QuantizeOptions& opt,
                              const LayerProgress& progress = {});

// The target of one Linear: opt.per_layer[name] if given, else opt.head for
// the output head, else opt.target; falling back (llama-quantize's way) when
// rows do not split into blocks.
QuantTarget layer_target(const QuantizeOptions& opt, const Linear& l, bool head);
// The report row of a Linear just quantized from the f32 weight w.
LayerReport layer_report(const Linear& l, const Tensor& w, const QuantTarget& t, double seconds);

// Per-Linear mean x^2 of its inputs over the calibration set, with the model as it is.
std::map<std::string, std::vector<float>> collect_importance(Transformer& model, const calib::CalibSet& calib);

}  // namespace shrink::quant
