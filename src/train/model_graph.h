// A transformer's forward as a training graph, one per architecture
// (train/llama_graph.h, train/gpt2_graph.h), each built from train/ops.h with
// the same kernels and the same sequence of steps as Transformer::forward
// (DESIGN.md: one forward per architecture serves inference, calibration and
// training). model_logits picks the one of the model's architecture; the
// Trainer, validation and the distillation objective call it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/autograd.h"
#include "train/transformer_params.h"

namespace shrink::train {

class LoraAdapters;  // train/lora.h

// Fake quantization of weights in the graph (train/fake_quant.h's FakeQuant,
// train/qat.h's QatQuantizer): the weights it covers enter the forward
// through apply(), which rounds them and defines their backward (an STE).
class WeightQuantizer {
 public:
  virtual ~WeightQuantizer() = default;
  virtual bool covers(const std::string& weight_name) const = 0;
  // The fake-quantized weight `w` (the graph's leaf of the Parameter named weight_name).
  virtual Var apply(Graph& g, const std::string& weight_name, Var w) = 0;
  // The input x of the Linear whose weight is weight_name, as the exported
  // model's kernel rounds it (activation fake quantization); by default, x.
  // A tied head asks with "token_embd.weight".
  virtual Var apply_input(Graph& g, const std::string& weight_name, Var x) {
    (void)g, (void)weight_name;
    return x;
  }
};

// What one block exposes to feature losses and block-importance measures.
struct BlockTaps {
  Var out = nullptr;                          // the block's output hidden state [n x dim]
  // Attention's inputs: Llama's q, k after RoPE; GPT-2's columns of the fused qkv.
  Var q = nullptr, k = nullptr, v = nullptr;
};

// Variations of the graph; the default is the plain model.
struct GraphOptions {
  std::vector<BlockTaps>* taps = nullptr;  // when set: filled with one entry per block
  // Every TransformerParams parameter enters the graph as a constant: no
  // gradient is computed for it (LoRA fine-tuning trains only its adapters).
  bool freeze_base = false;
  LoraAdapters* lora = nullptr;            // adds (α/r)·x·Aᵀ·Bᵀ to the Linears it covers
  // The Linears it covers use fake-quantized weights; so does the token
  // embedding (and with it a tied head) when it covers "token_embd.weight".
  WeightQuantizer* fake_quant = nullptr;
};

// Logits [n x vocab] of tokens laid out as n / seq_len sequences of seq_len
// tokens, each at positions 0 .. seq_len-1, by the graph of p.cfg.arch.
Var model_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len,
                 const GraphOptions& opt = {});

}  // namespace shrink::train
