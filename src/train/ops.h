// Differentiable ops of the transformer forward, over train::Graph. Each op
// computes its value with the same kernel the inference forward uses
// (kernels/ops.h, oneDNN sgemm), so a training graph and Transformer::forward
// agree by construction; the backward kernels are this module's own. Values
// are row-major [rows x cols] f32; activations of n tokens are [n x features].
// Ops know no models (DESIGN.md: kernels know nothing of models).
#pragma once
#include <cstdint>
#include <vector>

#include "train/autograd.h"

namespace shrink::train {

// y[n x out] = x[n x in] · wᵀ (+ b): w is {out, in} like a Linear's weight.
// Forward and both backward products are oneDNN sgemm calls.
Var linear(Var x, Var w, Var b = nullptr);
Var add(Var a, Var b);          // a + b, same shape (residuals)
Var mul(Var a, Var b);          // a ⊙ b, same shape
Var scale(Var x, float s);      // s · x
Var sum(Var x);                 // Σ x, one element (accumulated in double)

// Columns first .. first+count-1 of x [n x cols]: [n x count] (GPT-2's q, k,
// v out of the fused qkv projection). Backward adds into those columns.
Var columns(Var x, int64_t first, int64_t count);

// Rows of `table` {vocab, dim} picked by tokens: [n x dim]. Backward scatter-adds.
Var embedding(Var table, const std::vector<int32_t>& tokens);

Var rmsnorm(Var x, Var w, float eps);             // x / rms(x) · w, per row
Var layernorm(Var x, Var w, Var b, float eps);    // (x − mean) / std · w + b, per row

// Rotary position embedding of x [n x n_heads·head_dim]; token t is at
// positions[t] / scale. interleaved: pairs (2i, 2i+1) (Meta/llama2.c/GGUF);
// else halves (NeoX). A rotation's transpose is the rotation by −angle, so the
// backward is the same kernel at negated positions.
Var rope(Var x, int64_t n_heads, int64_t head_dim, const std::vector<int32_t>& positions, float theta, float scale,
         bool interleaved);

Var silu(Var x);                // x · sigmoid(x)
Var gelu(Var x);                // GPT-2's tanh approximation
Var swiglu(Var gate, Var up);   // silu(gate) ⊙ up

// Causal self-attention with grouped KV heads over rows that hold
// n / seq_len independent sequences of seq_len tokens each (a batch):
// q [n x n_heads·head_dim], k, v [n x n_kv_heads·head_dim] -> [n x n_heads·head_dim].
// Softmax over past positions with scale 1/sqrt(head_dim). The backward
// recomputes the probabilities rather than storing n² of them per head.
Var attention(Var q, Var k, Var v, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t seq_len);

// Self-attention relations for feature distillation (TinyBERT's attention
// maps, MiniLM's attention and value relations): per head h and token t of a
// sequence, the row over its positions j ≤ t of
//   s[t, j] = a_h[t] · b_hk[j] / sqrt(head_dim)   (causal; entries j > t are 0)
// and, with softmax, softmax_j(s[t, ·]) (the attention probabilities when a, b
// are q, k after RoPE). a [n x a_heads·head_dim], b [n x b_heads·head_dim];
// a_heads is a multiple of b_heads (grouped heads share b's head, as GQA).
// Result: [a_heads · n x seq_len], row h·n + t. O(heads·n·seq_len·head_dim):
// meant for short distillation sequences.
Var relation(Var a, Var b, int64_t a_heads, int64_t b_heads, int64_t head_dim, int64_t seq_len, bool softmax);

}  // namespace shrink::train
