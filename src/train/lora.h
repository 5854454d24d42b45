// LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
// Models"): a frozen Linear W {out, in} gets a trainable low-rank update,
//   y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ,   A {r, in}, B {out, r},
// A random (Kaiming-uniform, as PEFT's default), B zero so that training starts
// from the unchanged model. After training the update is merged back,
// W ← W + (α/r)·B·A, and the model is plain again.
//
// Use: LoraAdapters lora(model, cfg); then model_logits with
// GraphOptions{.freeze_base = true, .lora = &lora} and an optimizer over
// lora.params() only; lora.merge_into(model) at the end.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "train/autograd.h"
#include "train/llama_graph.h"

namespace shrink::train {

struct LoraConfig {
  int rank = 8;
  float alpha = 16;  // the update is scaled by alpha / rank (Hu et al. §4.1)
  // Linear roles to adapt (linear_role): q, k, v, o, gate, up, down, head for
  // Llama; qkv, o, up, down, head for GPT-2 (block_linear_roles). The default
  // is every block Linear of a Llama; a role the model's architecture has no
  // Linear for is an error (GPT-2 has one fused qkv, not q, k and v).
  std::vector<std::string> targets{"q", "k", "v", "o", "gate", "up", "down"};
  uint64_t seed = 0;
};

// Parses "q,v" or "all" (every block Linear of `arch`) into roles; throws on
// a role that is not one of arch's Linears.
std::vector<std::string> parse_lora_targets(const std::string& list, Arch arch = Arch::Llama);

class LoraAdapters {
 public:
  struct Adapter {
    Parameter a, b;  // A {r, in}, B {out, r}
  };

  // Adapters for the Linears of `model` whose role is in cfg.targets.
  LoraAdapters(TransformerParams& model, const LoraConfig& cfg);

  float scaling() const { return cfg_.alpha / float(cfg_.rank); }
  // (α/r)·(x·Aᵀ)·Bᵀ for the Linear whose weight is named `weight_name`, or null when it has no adapter.
  Var delta(Graph& g, const std::string& weight_name, Var x);
  // The adapters' parameters only (A and B of each), for the optimizer.
  std::vector<Parameter*> params();
  int64_t count();  // trainable values
  size_t size() const { return adapters_.size(); }
  const Adapter* find(const std::string& weight_name) const;

  // W ← W + (α/r)·B·A for every adapted Linear of `model` (the model the
  // adapters were made for, or a copy with the same names and shapes).
  void merge_into(TransformerParams& model) const;

 private:
  LoraConfig cfg_;
  std::map<std::string, Adapter> adapters_;  // by weight name
  std::vector<std::string> order_;           // the model's order, for params()
};

}  // namespace shrink::train
