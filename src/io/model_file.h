// ModelFile: what every reader produces and every writer consumes — a
// ModelConfig, the tensors under canonical (GGUF) names, and the tokenizer.
//
// Canonical names and layouts (weights are {out_features, in_features}):
//   token_embd.weight {vocab, dim}       position_embd.weight {ctx, dim} (gpt2)
//   output_norm.weight (+.bias gpt2)     output.weight {vocab, dim} (absent when tied)
//   blk.N.attn_norm.weight (+.bias)      blk.N.ffn_norm.weight (+.bias)
//   llama: blk.N.attn_q / attn_k / attn_v .weight (+.bias if qkv_bias), attn_output.weight,
//          blk.N.ffn_gate / ffn_up / ffn_down .weight
//   gpt2:  blk.N.attn_qkv.weight {3*dim, dim} + .bias, attn_output.weight + .bias,
//          blk.N.ffn_up.weight + .bias, ffn_down.weight + .bias
// Llama q/k rows are in the order of config.rope_style (HF readers undo HF's
// rotate-half permutation so that all formats give interleaved pairs).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "io/compressed_tensors.h"
#include "io/tokenizer.h"
#include "model/config.h"

namespace shrink {

struct ModelFile {
  ModelConfig config;
  std::map<std::string, Tensor> tensors;
  // Linears stored group-quantized, by base name ("blk.0.attn_q", "output"):
  // base.weight_packed/_scale/_zero_point/_shape replace base.weight
  // (compressed-tensors pack-quantized; canonical forms in io/compressed_tensors.h).
  std::map<std::string, PackedScheme> packed;
  // Linears stored as W8A8 (compressed-tensors int-quantized), by base name:
  // base.weight is I8 {out, in} beside base.weight_scale (+ base.input_scale).
  std::map<std::string, Int8Scheme> int8;
  std::shared_ptr<Tokenizer> tokenizer;  // null when none was found
  std::string format;                    // "llama2c", "gguf", "hf"
  std::string path;

  const Tensor& get(const std::string& name) const;  // throws naming the file if missing
  const Tensor* find(const std::string& name) const;
  int64_t weight_bytes() const;
};

struct LoadOptions {
  std::string tokenizer_path;   // --tokenizer FILE; empty = look beside the model
  bool require_tokenizer = false;
  bool check_finite = true;     // reject NaN/Inf weights
};

// Detects the format (directory with config.json -> HF; GGUF magic -> GGUF;
// otherwise llama2.c .bin) and loads it.
ModelFile load_model(const std::string& path, const LoadOptions& opts = {});

// Format readers and writers.
ModelFile load_llama2c(const std::string& path);
ModelFile load_gguf_model(const std::string& path);
ModelFile load_hf(const std::string& dir);
void save_gguf_model(const ModelFile& m, const std::string& path);  // tensors written in their dtype
// save_hf writes dense tensors in `dtype`; with exact, a tensor that does not
// survive `dtype` unchanged is written in F32 (a saved model then computes
// exactly what the in-memory one did, e.g. smoothed norms of an f16 model).
void save_hf(const ModelFile& m, const std::string& dir, DType dtype, bool exact = false);

// Checks that every tensor the config implies is present with the right shape.
void check_model_tensors(const ModelFile& m);

}  // namespace shrink
