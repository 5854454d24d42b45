// The leaves and Linears of a model graph built the way GraphOptions asks
// (frozen base, fake quantization, LoRA): shared by train/llama_graph.cpp and
// train/gpt2_graph.cpp. Internal to src/train.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/lora.h"
#include "train/model_graph.h"
#include "train/ops.h"

namespace shrink::train {

struct GraphBuilder {
  Graph& g;
  const GraphOptions& opt;
  std::map<std::string, LowRankFactors>& factors;  // the model's factorized Linears

  Var weight(Parameter& p) const { return opt.freeze_base ? g.constant(p.value) : g.param(p); }

  // x · Wᵀ (+ bias), W fake-quantized and a LoRA term added where those cover W.
  // The input is rounded too where the quantizer rounds activations (WeightQuantizer::apply_input).
  Var linear_of(Parameter& w, Var x, Parameter* bias = nullptr) const {
    if (w.value.empty()) return factorized(w, x, bias);
    Var wv = weight(w), xin = x;
    if (opt.fake_quant && opt.fake_quant->covers(w.name)) {
      wv = opt.fake_quant->apply(g, w.name, wv);
      xin = opt.fake_quant->apply_input(g, w.name, x);
    }
    Var y = linear(xin, wv, bias ? weight(*bias) : nullptr);
    if (opt.lora)
      if (Var delta = opt.lora->delta(g, w.name, x)) y = add(y, delta);
    return y;
  }

  // x · Vᵀ · Uᵀ (+ bias) for a factorized Linear, as LowRankWeight multiplies (never forming U·V).
  Var factorized(Parameter& w, Var x, Parameter* bias) const {
    const auto it = factors.find(w.name);
    SHRINK_CHECK(it != factors.end(), w.name, ": neither a weight nor low-rank factors");
    return linear(linear(x, weight(it->second.v)), weight(it->second.u), bias ? weight(*bias) : nullptr);
  }

  // The token embedding table, fake-quantized when the quantizer covers it (a tied head uses the same leaf).
  Var token_table(Parameter& tok_embd) const {
    Var emb = weight(tok_embd);
    if (opt.fake_quant && opt.fake_quant->covers(tok_embd.name)) emb = opt.fake_quant->apply(g, tok_embd.name, emb);
    return emb;
  }

  // Logits through the output head: a separate `output` Linear, or (tied) the token
  // table `emb` itself, its input rounded as the table's quantizer asks; LoRA covers neither.
  Var head(Parameter& output, Parameter& tok_embd, Var emb, Var xn) const {
    if (!output.value.empty()) return linear_of(output, xn);
    if (opt.fake_quant && opt.fake_quant->covers(tok_embd.name)) xn = opt.fake_quant->apply_input(g, tok_embd.name, xn);
    return linear(xn, emb);
  }
};

// Position of each token: t mod seq_len (the layout of model_logits).
inline std::vector<int32_t> positions_of(int64_t n, int64_t seq_len, const char* who) {
  SHRINK_CHECK(seq_len > 0 && n > 0 && n % seq_len == 0, who, ": ", n, " tokens are not whole sequences of ", seq_len);
  std::vector<int32_t> pos(n);
  for (int64_t t = 0; t < n; ++t) pos[t] = int32_t(t % seq_len);
  return pos;
}

}  // namespace shrink::train
