// The training graph of GPT-2 (Radford et al. 2019): learned position
// embeddings, pre-LayerNorm blocks with biases, a fused {q;k;v} projection,
// causal multi-head attention, a GELU (tanh) MLP, a final LayerNorm and a tied
// or separate head. The same steps and kernels as Transformer::forward's
// GPT-2 path (model/transformer.cpp); a test holds the logits equal.
// Most callers want model_logits (train/model_graph.h).
#pragma once
#include <cstdint>
#include <vector>

#include "train/model_graph.h"

namespace shrink::train {

// Logits [n x vocab] of tokens laid out as n / seq_len sequences of seq_len
// tokens, each at positions 0 .. seq_len-1 (seq_len ≤ the learned positions).
// GraphOptions: taps get q, k, v as the fused projection's three column
// blocks; LoRA and fake quantization cover attn_qkv ("qkv"), attn_output
// ("o"), ffn_up ("up"), ffn_down ("down") and an untied head ("head").
Var gpt2_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len,
                const GraphOptions& opt = {});

}  // namespace shrink::train
