// Element-wise and row-wise operations of the transformer forward: norms,
// RoPE, activations, softmax and causal attention over a KV cache. Plain f32,
// rows of a row-major [n x dim] matrix; OpenMP over rows where it pays.
#pragma once
#include <cstdint>

namespace shrink::kernels {

// out[i,:] = x[i,:] / rms(x[i,:]) * w      (RMSNorm; out may alias x)
void rmsnorm(const float* x, const float* w, float* out, int64_t n, int64_t dim, float eps);
// out[i,:] = (x[i,:] - mean) / std * w + b  (LayerNorm; out may alias x)
void layernorm(const float* x, const float* w, const float* b, float* out, int64_t n, int64_t dim, float eps);

// Rotary position embedding in place on x [n_tokens x n_heads x head_dim];
// token t sits at position positions[t] / scale. `interleaved` rotates pairs
// (2i, 2i+1) (Meta/GGUF llama); otherwise halves (i, i + head_dim/2) (NeoX).
void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions, float theta,
          float scale, bool interleaved);

void silu_mul(float* gate, const float* up, int64_t n);  // gate = silu(gate) * up
void gelu_tanh(float* x, int64_t n);                      // GPT-2's tanh approximation
void add_bias(float* y, const float* b, int64_t n, int64_t dim);
void add(float* y, const float* x, int64_t n);            // y += x
void softmax(float* x, int64_t n);                        // in place, numerically stable
// log-softmax value of entry `target` of logits row x[n].
double log_softmax_at(const float* x, int64_t n, int64_t target);

// Causal multi-head attention with grouped KV heads.
//   q     [n_tokens x n_heads x head_dim], the queries of positions pos0 .. pos0+n_tokens-1
//   k, v  keys/values of positions 0 .. pos0+n_tokens-1: position j of KV head h
//         starts at k[h * head_stride + j * pos_stride] (head_dim floats)
//   out   [n_tokens x n_heads x head_dim]
// KV-head-major storage (pos_stride = head_dim, head_stride >= cache_len * head_dim)
// streams each head's keys contiguously, which decode at long context needs.
void attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens, int64_t pos0,
               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t pos_stride, int64_t head_stride);
// The same over position-major k, v [cache_len x n_kv_heads x head_dim].
inline void attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens, int64_t pos0,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim) {
  attention(q, k, v, out, n_tokens, pos0, n_heads, n_kv_heads, head_dim, n_kv_heads * head_dim, head_dim);
}

// One head of the above as two GEMMs (prefill): S = scale * Q K^T, row t
// softmaxed over its causal prefix 0 .. pos0+t, then out = S V. q/out rows
// are q_stride apart, k/v rows kv_stride apart; S is n_tokens x (pos0+n_tokens) scratch.
void attention_head_gemm(const float* q, const float* k, const float* v, float* out, float* S, int64_t n_tokens,
                         int64_t pos0, int64_t q_stride, int64_t kv_stride, int64_t head_dim, float scale);

}  // namespace shrink::kernels
