// The training graph of a Llama-family transformer (RMSNorm, RoPE, causal GQA
// attention, SwiGLU), built from train/ops.h over f32 Parameters. Its ops
// compute their values with the same kernels as Transformer::forward, and a
// test holds its logits equal to Transformer's on a real model
// (docs/architecture.md, "Training").
#pragma once
#include <cstdint>
#include <vector>

#include "io/model_file.h"
#include "model/config.h"
#include "train/autograd.h"

namespace shrink::train {

struct LlamaBlockParams {
  Parameter attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
};

struct LlamaParams {
  ModelConfig cfg;
  Parameter tok_embd, out_norm, output;  // output is empty with tied embeddings
  std::vector<LlamaBlockParams> blocks;

  // Every parameter, in a fixed order (optimizer state and determinism rely on it).
  std::vector<Parameter*> all();
  int64_t count();  // number of trainable values

  // Weights ~ N(0, std²) (output projections wo and w_down scaled by
  // 1/sqrt(2·n_layers), as GPT-2), norms 1; deterministic in `seed`.
  static LlamaParams random(const ModelConfig& cfg, uint64_t seed, float std = 0.02f);
  // f32 copies of a Llama-architecture model's weights (canonical GGUF names):
  // the model's own weights become master weights to fine-tune or distil.
  static LlamaParams from_model_file(const ModelFile& m);
};

// Logits [n x vocab] of tokens laid out as n / seq_len sequences of seq_len
// tokens, each at positions 0 .. seq_len-1.
Var llama_logits(Graph& g, LlamaParams& p, const std::vector<int32_t>& tokens, int64_t seq_len);

}  // namespace shrink::train
