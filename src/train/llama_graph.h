// The training graph of a Llama-family transformer (RMSNorm, RoPE, causal GQA
// attention, SwiGLU), built from train/ops.h over f32 Parameters. Its ops
// compute their values with the same kernels as Transformer::forward, and a
// test holds its logits equal to Transformer's on a real model
// (docs/architecture.md, "Training"). Most callers want model_logits
// (train/model_graph.h), which picks this graph or GPT-2's by the config.
#pragma once
#include <cstdint>
#include <vector>

#include "train/model_graph.h"

namespace shrink::train {

// Logits [n x vocab] of tokens laid out as n / seq_len sequences of seq_len
// tokens, each at positions 0 .. seq_len-1.
Var llama_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len);
Var llama_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len,
                 const GraphOptions& opt);

}  // namespace shrink::train
