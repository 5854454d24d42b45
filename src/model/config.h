// ModelConfig: the shape and hyper-parameters of a transformer, independent of
// the file format it came from. Readers in io/ fill it; the forward in model/
// consumes it; writers in io/ serialise it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shrink {

enum class Arch { Llama, GPT2 };
std::string arch_name(Arch a);
Arch parse_arch(const std::string& s);  // "llama", "gpt2"; throws otherwise

enum class RopeStyle {
  Interleaved,  // rotate pairs (2i, 2i+1): Meta / llama2.c / GGUF llama convention
  Neox          // rotate halves (i, i+d/2): GPT-NeoX, GGUF qwen2
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  int dim = 0;          // embedding width
  int hidden_dim = 0;   // feed-forward width
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;   // < n_heads for GQA, 1 for MQA
  int head_dim = 0;     // usually dim / n_heads
  int vocab_size = 0;
  int max_seq_len = 0;  // training context
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  float rope_scale = 1.0f;  // linear position scaling: positions are divided by this
  RopeStyle rope_style = RopeStyle::Interleaved;
  bool tied_embeddings = false;  // output head shares token_embd.weight
  bool qkv_bias = false;         // Qwen2-style biases on q/k/v (llama arch)
  std::string name;              // free-form, for reports

  // Per-layer sizes of a non-uniform model (structured pruning: compress/prune/structured.h).
  // Empty = every layer has n_heads / n_kv_heads / hidden_dim. When set (one entry per layer),
  // the scalar fields hold the largest layer's value (scratch buffers are sized by them), and
  // head_dim is explicit (it can no longer be dim / n_heads). Files store them as llama.cpp
  // does for per-layer models: arrays under {arch}.attention.head_count, .head_count_kv and
  // {arch}.feed_forward_length (GGUF), *_per_layer keys in config.json (docs/pruning.md).
  std::vector<int> layer_heads, layer_kv_heads, layer_hidden;

  int kv_dim() const { return n_kv_heads * head_dim; }
  int q_dim() const { return n_heads * head_dim; }
  int heads(int layer) const { return layer_heads.empty() ? n_heads : layer_heads[layer]; }
  int kv_heads(int layer) const { return layer_kv_heads.empty() ? n_kv_heads : layer_kv_heads[layer]; }
  int ffn_dim(int layer) const { return layer_hidden.empty() ? hidden_dim : layer_hidden[layer]; }
  int q_dim(int layer) const { return heads(layer) * head_dim; }
  int kv_dim(int layer) const { return kv_heads(layer) * head_dim; }
  bool uniform() const { return layer_heads.empty() && layer_kv_heads.empty() && layer_hidden.empty(); }
  // Sets the per-layer sizes (and the scalar maxima); all three vectors have n_layers entries.
  // Drops them again when every layer is the same.
  void set_layer_sizes(std::vector<int> heads, std::vector<int> kv_heads, std::vector<int> hidden);
  // Fills head_dim when 0 and checks every field is consistent; throws shrink::Error naming `source`.
  void validate(const std::string& source);
  int64_t parameter_count() const;
  std::string summary() const;
};

}  // namespace shrink
