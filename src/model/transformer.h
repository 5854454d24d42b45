// Transformer: one forward for the Llama family (RMSNorm, RoPE, GQA, SwiGLU,
// optional q/k/v bias) and one for GPT-2 (LayerNorm, learned positions, GELU,
// biases), over Linear layers. The same forward serves generation, perplexity,
// calibration (through the Linear input hook) and, later, training.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/model_file.h"
#include "model/config.h"
#include "model/linear.h"

namespace shrink {

// How a KV cache stores keys and values: f32, or int8 codes with one f32 scale
// per (position, KV head) (symmetric absmax/127; kernels/attention_q8.h).
enum class KvType : uint8_t { F32, Int8 };
const char* kv_type_name(KvType t);             // "f32", "int8"
KvType parse_kv_type(const std::string& name);  // throws, listing the names, on an unknown one
std::vector<std::string> kv_type_names();

// Keys and values of every layer for positions 0 .. len-1, KV-head-major: each
// (layer, KV head) is one [max_len x head_dim] panel, so decode streams a
// head's keys front to back. Attention always reads them from here, so with an
// int8 cache the new tokens' own keys and values are the quantized ones too
// (prefill and decode see the same numbers).
struct KVCache {
  int n_layers = 0, max_len = 0, kv_dim = 0, n_kv_heads = 0, head_dim = 0;  // kv_dim, n_kv_heads: the largest layer's
  KvType type = KvType::F32;
  int len = 0;  // positions filled
  std::vector<float> k, v;     // F32:  [layer][kv head][pos][head_dim]
  std::vector<int8_t> qk, qv;  // Int8: codes  [layer][kv head][pos][head_dim]
  std::vector<float> sk, sv;   //       scales [layer][kv head][pos]
  // Offset of a layer's values (k, v, qk, qv) and of its scales (sk, sv).
  // A non-uniform model (per-layer KV heads) has one entry per layer here, and the
  // layers' panels are packed back to back; empty = every layer has n_kv_heads.
  std::vector<int> layer_kv_heads;
  std::vector<int64_t> layer_heads_before;  // prefix sums of layer_kv_heads (n_layers + 1 entries)
  int kv_heads_of(int layer) const { return layer_kv_heads.empty() ? n_kv_heads : layer_kv_heads[layer]; }
  int64_t heads_before(int layer) const {
    return layer_heads_before.empty() ? int64_t(layer) * n_kv_heads : layer_heads_before[layer];
  }
  int64_t layer_offset(int layer) const { return heads_before(layer) * max_len * head_dim; }
  int64_t layer_scale_offset(int layer) const { return heads_before(layer) * max_len; }
  // Writes n tokens' keys and values (token t's at k + t * stride, v + t * stride;
  // kv_dim floats each, heads one after another) at positions pos .. pos+n-1
  // of `layer`: copied, or quantized.
  void store(int layer, int pos, int n, const float* k, const float* v, int64_t stride);
  int64_t bytes() const;  // allocated bytes (codes + scales for int8)
  int64_t bytes_per_pos() const { return max_len ? bytes() / max_len : 0; }  // all layers, K and V
  void clear() { len = 0; }
};

struct Block {
  Tensor attn_norm, attn_norm_b, ffn_norm, ffn_norm_b;  // f32 (biases: GPT-2 only)
  Linear wq, wk, wv;   // llama
  Linear wqkv;         // gpt2: fused {q;k;v}
  Linear wo, w_gate, w_up, w_down;
};

class Transformer {
 public:
  // Builds the model over the file's tensors (large weights are shared, not copied).
  explicit Transformer(const ModelFile& m);

  const ModelConfig& config() const { return cfg_; }
  KVCache new_cache(int max_len, KvType type = KvType::F32) const;
  // Runs tokens[0..n) at positions cache.len .. cache.len+n-1 and appends
  // their keys/values. Writes logits [n x vocab] if all_logits, else the last
  // token's [vocab].
  void forward(const int32_t* tokens, int n, KVCache& cache, float* logits, bool all_logits);

  // The pieces of forward(), for the calibration driver (compress/calib), which
  // runs the model one block at a time over many sequences:
  //   embed(tokens) -> forward_block(0..n_layers-1) -> forward_head.
  // x is [n x dim]. forward_block works at positions cache.len .. cache.len+n-1
  // and writes that layer's keys/values but does not advance cache.len.
  void embed(const int32_t* tokens, int n, int pos0, float* x) const;
  void forward_block(int layer, float* x, int n, KVCache& cache);
  void forward_head(const float* x, int n, float* logits);

  // Writes the current weights (as compressed) and norms back into m under
  // canonical names, so a compressed model can be saved. Throws for a
  // representation that has no tensor form in GGUF/HF files. With
  // group_packed, group-quantized linears are written as compressed-tensors
  // pack-quantized tensors (m.packed) and W8A8 ones as int-quantized
  // (m.int8); only save_hf can write those.
  void export_to(ModelFile& m, bool group_packed = false);

  // The token embedding table {vocab, dim}; replacing it (e.g. by a
  // block-quantized copy, as llama-quantize stores it) also replaces a tied head.
  const Tensor& token_embedding() const { return tok_embd_; }
  void set_token_embedding(Tensor t);

  std::vector<Linear*> linears();  // every Linear, in forward order (output head last)
  Block& block(int i) { return blocks_[i]; }
  Linear& output() { return output_; }
  int64_t weight_bytes() const;      // all parameters as stored
  int64_t decode_bytes() const;      // bytes one decoded token streams (linears + one embedding row)
  LinearInputHook hook;              // optional: sees every Linear's input

 private:
  void attention_llama(Block& b, int layer, int n, KVCache& cache, const int32_t* pos);
  void attention_gpt2(Block& b, int layer, int n, KVCache& cache);
  void attend(int layer, int n, KVCache& cache);  // q_ against the cache -> att_
  void ffn(Block& b, int layer, int n);
  void norm(const Tensor& w, const Tensor& bias, const float* x, float* out, int n) const;
  void run(const Linear& l, const float* x, float* y, int n);
  // run() for Linears reading the same input (forward_shared_input: one pass at decode).
  void run_shared(const std::vector<const Linear*>& ls, const float* x, const std::vector<float*>& ys, int n);
  void reserve(int n);

  ModelConfig cfg_;
  Tensor tok_embd_, pos_embd_, out_norm_, out_norm_b_;
  Linear output_;
  std::vector<Block> blocks_;
  // Scratch, sized for the largest n seen.
  int cap_ = 0;
  std::vector<int32_t> pos_;
  std::vector<float> x_, xn_, q_, k_, v_, att_, h1_, h2_, qkv_;
};

// Saves the model as a Hugging Face directory: group-quantized linears as
// compressed-tensors pack-quantized tensors, W8A8 ones as int-quantized
// (config.json quantization_config), other weights in `dtype` (F32/F16/BF16;
// with exact, F32 for a tensor `dtype` cannot hold unchanged: save_hf).
// `original` supplies the config, tokenizer and norms (usually the ModelFile
// the model was built from). Throws for weights pack-quantized cannot hold
// (float codebooks, block types).
void save_quantized_hf(Transformer& model, const ModelFile& original, const std::string& dir, DType dtype,
                       bool exact = false);

}  // namespace shrink
