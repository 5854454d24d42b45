// The training graph of a Llama-family transformer (RMSNorm, RoPE, causal GQA
// attention, SwiGLU), built from train/ops.h over f32 Parameters. Its ops
// compute their values with the same kernels as Transformer::forward, and a
// test holds its logits equal to Transformer's on a real model
// (docs/architecture.md, "Training").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/model_file.h"
#include "model/config.h"
#include "train/autograd.h"

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
};

struct BlockParams {
  Parameter attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
};

struct TransformerParams {
  ModelConfig cfg;
  Parameter tok_embd, out_norm, output;  // output is empty with tied embeddings
  std::vector<BlockParams> blocks;

  // Every parameter, in a fixed order (optimizer state and determinism rely on it).
  std::vector<Parameter*> all();
  // The weights of the Linears (7 per block, then the output head when untied), in all()'s order.
  std::vector<Parameter*> linears();
  int64_t count();  // number of trainable values

  // Weights ~ N(0, std²) (output projections wo and w_down scaled by
  // 1/sqrt(2·n_layers), as GPT-2), norms 1; deterministic in `seed`.
  static TransformerParams random(const ModelConfig& cfg, uint64_t seed, float std = 0.02f);
  // f32 copies of a Llama-architecture model's weights (canonical GGUF names):
  // the model's own weights become master weights to fine-tune or distil.
  static TransformerParams from_model_file(const ModelFile& m);
};

// The role of a Linear weight by its canonical name: "q", "k", "v", "o",
// "gate", "up", "down" for blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,
// ffn_up,ffn_down}.weight, "head" for output.weight, "" for anything else.
// LoRA and fake quantization choose their Linears by these roles.
std::string linear_role(const std::string& weight_name);

// What one block exposes to feature losses and block-importance measures.
struct BlockTaps {
  Var out = nullptr;                          // the block's output hidden state [n x dim]
  Var q = nullptr, k = nullptr, v = nullptr;  // attention's inputs (q, k after RoPE)
};

// Variations of the graph llama_logits builds; the default is the plain model.
struct GraphOptions {
  std::vector<BlockTaps>* taps = nullptr;  // when set: filled with one entry per block
  // Every TransformerParams weight enters the graph as a constant: no gradient is
  // computed for it (LoRA fine-tuning trains only its adapters).
  bool freeze_base = false;
  LoraAdapters* lora = nullptr;            // adds (α/r)·x·Aᵀ·Bᵀ to the Linears it covers
  // The Linears it covers use fake-quantized weights; so does the token
  // embedding (and with it a tied head) when it covers "token_embd.weight".
  WeightQuantizer* fake_quant = nullptr;
};

// Logits [n x vocab] of tokens laid out as n / seq_len sequences of seq_len
// tokens, each at positions 0 .. seq_len-1.
Var llama_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len);
Var llama_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len,
                 const GraphOptions& opt);

// The names before GPT-2 joined the training graph: branches written against
// them still build after a merge. New code uses the names above.
using LlamaParams = TransformerParams;
using LlamaBlockParams = BlockParams;
using LlamaGraphOptions = GraphOptions;

}  // namespace shrink::train
