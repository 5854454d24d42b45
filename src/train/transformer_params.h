// The f32 master weights of a transformer for training (train/trainer.h):
// one struct for both architectures the inference forward knows
// (model/transformer.h), each parameter under its canonical GGUF name, so a
// trained model is saved by writing all() as it is.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/model_file.h"
#include "model/config.h"
#include "train/autograd.h"

namespace shrink::train {

// One block. A parameter the architecture does not have stays empty:
//   Llama: attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down.
//   GPT-2: attn_norm + attn_norm_b (LayerNorm), wqkv + bqkv (fused {q;k;v}),
//          wo + bo, ffn_norm + ffn_norm_b, w_up + b_up, w_down + b_down.
struct BlockParams {
  Parameter attn_norm, attn_norm_b, wq, wk, wv, wqkv, bqkv, wo, bo, ffn_norm, ffn_norm_b, w_gate, w_up, b_up, w_down,
      b_down;

  // Every member, empty or not, in the order above (all() keeps the non-empty ones).
  std::vector<Parameter*> fields();
  std::vector<const Parameter*> fields() const;
};

// A factorized Linear (compress/lowrank: W ≈ U·V, model/lowrank_weight.h),
// trained as its two factors: u {out, r} named BASE.weight.lr_u and
// v {r, in} named BASE.weight.lr_v, the names of the file convention.
struct LowRankFactors {
  Parameter u, v;
};

struct TransformerParams {
  ModelConfig cfg;
  // pos_embd (learned positions {max_seq_len, dim}) and out_norm_b: GPT-2 only.
  // output is empty with tied embeddings.
  Parameter tok_embd, pos_embd, out_norm, out_norm_b, output;
  std::vector<BlockParams> blocks;
  // Factorized Linears by weight name ("blk.0.attn_q.weight"). Such a Linear's
  // own Parameter keeps its name and no value; the graph multiplies x·Vᵀ·Uᵀ.
  std::map<std::string, LowRankFactors> factors;

  // Every non-empty parameter, in a fixed order (optimizer state, checkpoints
  // and determinism rely on it): tok_embd, pos_embd, each block's fields(),
  // out_norm, out_norm_b, output. For a Llama model this is the order of
  // before GPT-2 was added, so its checkpoints still load.
  std::vector<Parameter*> all();
  // (A factorized Linear contributes its u, v where its weight would be.)
  // The weights of the dense Linears, in all()'s order, then the output head when
  // untied: Llama wq wk wv wo w_gate w_up w_down, GPT-2 wqkv wo w_up w_down per block.
  // Factorized Linears are not among them: LoRA, fake quantization and pruning
  // leave them alone.
  std::vector<Parameter*> linears();
  int64_t count();  // number of trainable values

  // Weights ~ N(0, std²) (output projections wo and w_down scaled by
  // 1/sqrt(2·n_layers), as GPT-2; GPT-2's position table N(0, (std/2)²), as
  // OpenAI's wpe), norm weights 1, biases 0; deterministic in `seed`.
  static TransformerParams random(const ModelConfig& cfg, uint64_t seed, float std = 0.02f);
  // f32 copies of a model's weights (canonical GGUF names): the model's own
  // weights become master weights to fine-tune or distil.
  static TransformerParams from_model_file(const ModelFile& m);
  // The inverse: a ModelFile of every parameter under its canonical name (2-D
  // weights in `dtype`: f32, f16 or bf16; the rest f32), shapes checked, no
  // tokenizer; Transformer loads it and save_gguf_model writes it.
  ModelFile to_model_file(DType dtype = DType::F32);
};

// The role of a Linear weight by its canonical name: "q", "k", "v", "o",
// "gate", "up", "down" for blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,
// ffn_up,ffn_down}.weight, "qkv" for GPT-2's fused blk.N.attn_qkv.weight,
// "head" for output.weight, "" for anything else. LoRA and fake quantization
// choose their Linears by these roles.
std::string linear_role(const std::string& weight_name);

// The roles of an architecture's block Linears: q k v o gate up down (Llama), qkv o up down (GPT-2).
std::vector<std::string> block_linear_roles(Arch arch);

}  // namespace shrink::train
