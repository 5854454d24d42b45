// Fake quantization for quantization-aware training: a weight is rounded to a
// b-bit grid and back in the forward pass, and the backward pretends the
// rounding is not there (the straight-through estimator, Bengio, Léonard &
// Courville 2013) inside the clipping range.
//
// The grid is shrink's symmetric integer group format (compress/quant/spec.h,
// "intBgGsym"): per group of G consecutive inputs of a row, one step s and
//   code = clamp(round(w/s + z), 0, 2^b − 1),  ŵ = s·(code − z),  z = 2^(b−1),
// i.e. ŵ = s·clamp(round(w/s), −Qn, Qp) with Qn = 2^(b−1), Qp = 2^(b−1) − 1.
// The forward calls quant::Codebook's own encode/decode, so a model exported
// with those steps (export_weight, or RTN's quantize_matrix when the steps are
// RTN's) dequantizes to exactly the fake-quant forward (tests/fake_quant_test.cpp).
//
// Scales in f16 (FakeQuantConfig::f16_scales): the step the forward uses is
// the learned step rounded to f16 (and kept at least f16's smallest normal in
// magnitude), so a format that stores its scales in f16 gets exactly the
// forward's values. int4g32sym with f16 scales is ggml's Q4_0 (d·(q − 8),
// q ∈ 0..15, f16 d); export_q4_0 writes it as Q4_0 blocks. Steps may be
// negative (ggml's RTN maps a block's largest-magnitude value to −8, so its d
// is negative when that value is positive): the grid is then mirrored and
// LSQ's gradients are unchanged.
//
// Two ways to pick the steps:
//   RTN  s = 2·max|w_group| / (2^b − 1), recomputed from the current weights
//        every forward (what `shrink quantize --method rtn --type intBgGsym`
//        would choose); gradient to w only, the identity (STE).
//   LSQ  (Esser et al. 2020, "Learned Step Size Quantization") s is a
//        Parameter per group, initialised from RTN, with the gradient
//        ∂ŵ/∂s = round(w/s) − w/s inside the range, −Qn below, Qp above,
//        scaled by 1/sqrt(N·Qp), N the number of weights sharing the step
//        (Esser et al. §2.2 use a per-layer step and N = the layer's weights;
//        with per-group steps N is the group size); w's gradient is the STE
//        masked to the range (zero where clipped).
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "compress/quant/spec.h"
#include "train/autograd.h"
#include "train/llama_graph.h"

namespace shrink {
class GroupQuantWeight;
}

namespace shrink::train {

// The symmetric integer spec "int<bits>g<group>sym" (group 0: one group per row).
quant::QuantSpec fake_quant_spec(int bits, int64_t group);

// RTN steps of w {rows, cols}: {rows, n_groups}, as quantize_matrix picks them.
Tensor rtn_steps(const Tensor& w, const quant::QuantSpec& spec);

// The fake-quantized w with steps from its own absmax (RTN); STE gradient.
Var fake_quant_rtn(Var w, const quant::QuantSpec& spec);
// The fake-quantized w with learned steps {rows, n_groups} (LSQ gradients to
// both); f16_scales: the forward uses each step rounded to f16.
Var fake_quant_lsq(Var w, Var step, const quant::QuantSpec& spec, bool f16_scales = false);
// The step a forward uses for a learned step s: s floored in magnitude (sign
// kept) and, with f16_scales, rounded to f16.
float effective_step(float s, bool f16_scales);

struct FakeQuantConfig {
  int bits = 4;
  int64_t group = 32;  // inputs per step (along a row); 0 = one step per row
  bool lsq = true;     // learned steps; false: RTN steps recomputed every forward
  // Linear roles to quantize (linear_role): q, k, v, o, gate, up, down, head (Llama); qkv, o, up, down, head (GPT-2).
  std::vector<std::string> targets{"q", "k", "v", "qkv", "o", "gate", "up", "down"};
  bool f16_scales = false;  // LSQ only: the forward (and export) use the steps rounded to f16
  std::vector<std::string> names;  // when set: exactly these weights, whatever `targets` says
};

// The fake quantization of a model's Linears, consulted by the model graph
// (GraphOptions::fake_quant). The weights stay the f32 master weights
// (trained through the STE); LSQ's steps are Parameters of their own.
class FakeQuant : public WeightQuantizer {
 public:
  FakeQuant(TransformerParams& model, const FakeQuantConfig& cfg);

  const quant::QuantSpec& spec() const { return spec_; }
  bool covers(const std::string& weight_name) const override { return covered_.count(weight_name) > 0; }
  // The fake-quantized weight `w` (the graph's leaf of the Parameter named weight_name).
  Var apply(Graph& g, const std::string& weight_name, Var w) override;
  // LSQ's step sizes (empty without LSQ): train them beside the weights, without weight decay.
  std::vector<Parameter*> params();

  // The quantized matrix of a covered weight at its current steps: its
  // dequantized values equal apply()'s forward bit for bit.
  std::shared_ptr<GroupQuantWeight> export_weight(const Parameter& w) const;
  // The same matrix as ggml Q4_0 blocks (int4g32sym with f16 scales only;
  // columns a multiple of 32): dequantizes to apply()'s forward bit for bit.
  Tensor export_q4_0(const Parameter& w) const;
  // LSQ: the learned steps of a covered weight (to initialise them from another quantizer's scales).
  Parameter& steps(const std::string& weight_name) { return steps_.at(weight_name); }
  // Every covered weight of `model` replaced by its fake-quantized values (a
  // dense copy of the quantized model, for evaluation with the plain graph).
  void quantize_in_place(TransformerParams& model) const;

 private:
  // The steps a covered weight uses now: its LSQ Parameter's, or RTN's of w.
  Tensor steps_of(const Parameter& w) const;

  FakeQuantConfig cfg_;
  quant::QuantSpec spec_;
  std::set<std::string> covered_;           // weight names
  std::map<std::string, Parameter> steps_;  // LSQ: by weight name
  std::vector<std::string> order_;
};

}  // namespace shrink::train
