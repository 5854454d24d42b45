#include "train/transformer_params.h"

#include <cmath>
#include <random>

#include "core/error.h"
#include "model/lowrank_weight.h"

namespace shrink::train {

std::vector<Parameter*> BlockParams::fields() {
  return {&attn_norm, &attn_norm_b, &wq,         &wk,     &wv,   &wqkv,   &bqkv, &wo,
          &bo,        &ffn_norm,    &ffn_norm_b, &w_gate, &w_up, &b_up,   &w_down, &b_down};
}

std::vector<const Parameter*> BlockParams::fields() const {
  std::vector<const Parameter*> out;
  for (Parameter* p : const_cast<BlockParams*>(this)->fields()) out.push_back(p);
  return out;
}

std::vector<Parameter*> TransformerParams::all() {
  std::vector<Parameter*> out;
  auto keep = [&](Parameter* p) {
    if (!p->value.empty()) out.push_back(p);
  };
  keep(&tok_embd);
  keep(&pos_embd);
  for (auto& b : blocks)
    for (Parameter* q : b.fields()) {
      keep(q);
      if (q->value.empty() && !q->name.empty()) {
        LowRankFactors& f = factors.at(q->name);
        out.push_back(&f.u);
        out.push_back(&f.v);
      }
    }
  keep(&out_norm);
  keep(&out_norm_b);
  keep(&output);
  return out;
}

std::vector<Parameter*> TransformerParams::linears() {
  std::vector<Parameter*> out;
  for (auto& b : blocks)
    for (Parameter* q : {&b.wq, &b.wk, &b.wv, &b.wqkv, &b.wo, &b.w_gate, &b.w_up, &b.w_down})
      if (!q->value.empty()) out.push_back(q);
  if (!output.value.empty()) out.push_back(&output);
  return out;
}

int64_t TransformerParams::count() {
  int64_t n = 0;
  for (Parameter* q : all()) n += q->numel();
  return n;
}

std::string linear_role(const std::string& name) {
  if (name == "output.weight") return "head";
  if (name.rfind("blk.", 0) != 0) return "";
  static const std::pair<std::string, const char*> roles[] = {
      {".attn_q.weight", "q"},      {".attn_k.weight", "k"},      {".attn_v.weight", "v"},
      {".attn_output.weight", "o"}, {".ffn_gate.weight", "gate"}, {".ffn_up.weight", "up"},
      {".ffn_down.weight", "down"}, {".attn_qkv.weight", "qkv"}};
  for (const auto& [suffix, role] : roles)
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return role;
  return "";
}

std::vector<std::string> block_linear_roles(Arch arch) {
  if (arch == Arch::GPT2) return {"qkv", "o", "up", "down"};
  return {"q", "k", "v", "o", "gate", "up", "down"};
}

namespace {

Tensor normal(std::vector<int64_t> shape, float std, std::mt19937_64& rng) {
  Tensor t = Tensor::alloc(DType::F32, std::move(shape));
  std::normal_distribution<float> dist(0.0f, std);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = dist(rng);
  return t;
}

Tensor filled(int64_t n, float v) {
  Tensor t = Tensor::alloc(DType::F32, {n});
  for (int64_t i = 0; i < n; ++i) t.f32()[i] = v;
  return t;
}

void check_trainable(const ModelConfig& c) {
  SHRINK_CHECK(c.arch == Arch::Llama || c.arch == Arch::GPT2, "the training graph covers Llama and GPT-2 only");
  SHRINK_CHECK(c.arch == Arch::GPT2 || !c.qkv_bias, "the training graph has no Llama q/k/v biases (Qwen2) yet");
  SHRINK_CHECK(c.head_dim > 0 && c.n_kv_heads > 0, "model config is not validated (head_dim/n_kv_heads are 0)");
  SHRINK_CHECK(c.arch != Arch::GPT2 || c.max_seq_len > 0, "a GPT-2 model needs max_seq_len (its learned positions)");
}

// Llama blocks, drawn in the order of before GPT-2 was added (the same seed
// still gives the same model).
void random_llama_blocks(TransformerParams& p, std::mt19937_64& rng, float std) {
  const ModelConfig& c = p.cfg;
  const int64_t d = c.dim, h = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  const float out_std = std / std::sqrt(2.0f * c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string s = "blk." + std::to_string(l) + ".";
    BlockParams& b = p.blocks[l];
    b.attn_norm = Parameter(s + "attn_norm.weight", filled(d, 1.0f), false);
    b.wq = Parameter(s + "attn_q.weight", normal({q, d}, std, rng));
    b.wk = Parameter(s + "attn_k.weight", normal({kv, d}, std, rng));
    b.wv = Parameter(s + "attn_v.weight", normal({kv, d}, std, rng));
    b.wo = Parameter(s + "attn_output.weight", normal({d, q}, out_std, rng));
    b.ffn_norm = Parameter(s + "ffn_norm.weight", filled(d, 1.0f), false);
    b.w_gate = Parameter(s + "ffn_gate.weight", normal({h, d}, std, rng));
    b.w_up = Parameter(s + "ffn_up.weight", normal({h, d}, std, rng));
    b.w_down = Parameter(s + "ffn_down.weight", normal({d, h}, out_std, rng));
  }
}

// GPT-2 blocks, in BlockParams order.
void random_gpt2_blocks(TransformerParams& p, std::mt19937_64& rng, float std) {
  const ModelConfig& c = p.cfg;
  const float out_std = std / std::sqrt(2.0f * c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string s = "blk." + std::to_string(l) + ".";
    const int64_t d = c.dim, h = c.ffn_dim(l), qkv = c.q_dim(l) + 2 * c.kv_dim(l);
    BlockParams& b = p.blocks[l];
    b.attn_norm = Parameter(s + "attn_norm.weight", filled(d, 1.0f), false);
    b.attn_norm_b = Parameter(s + "attn_norm.bias", filled(d, 0.0f), false);
    b.wqkv = Parameter(s + "attn_qkv.weight", normal({qkv, d}, std, rng));
    b.bqkv = Parameter(s + "attn_qkv.bias", filled(qkv, 0.0f), false);
    b.wo = Parameter(s + "attn_output.weight", normal({d, c.q_dim(l)}, out_std, rng));
    b.bo = Parameter(s + "attn_output.bias", filled(d, 0.0f), false);
    b.ffn_norm = Parameter(s + "ffn_norm.weight", filled(d, 1.0f), false);
    b.ffn_norm_b = Parameter(s + "ffn_norm.bias", filled(d, 0.0f), false);
    b.w_up = Parameter(s + "ffn_up.weight", normal({h, d}, std, rng));
    b.b_up = Parameter(s + "ffn_up.bias", filled(h, 0.0f), false);
    b.w_down = Parameter(s + "ffn_down.weight", normal({d, h}, out_std, rng));
    b.b_down = Parameter(s + "ffn_down.bias", filled(d, 0.0f), false);
  }
}

}  // namespace

TransformerParams TransformerParams::random(const ModelConfig& cfg, uint64_t seed, float std) {
  check_trainable(cfg);
  std::mt19937_64 rng(seed);
  TransformerParams p;
  p.cfg = cfg;
  const bool gpt2 = cfg.arch == Arch::GPT2;
  const int64_t d = cfg.dim;
  p.tok_embd = Parameter("token_embd.weight", normal({cfg.vocab_size, d}, std, rng));
  if (gpt2) p.pos_embd = Parameter("position_embd.weight", normal({cfg.max_seq_len, d}, std / 2, rng));
  p.blocks.resize(cfg.n_layers);
  if (gpt2)
    random_gpt2_blocks(p, rng, std);
  else
    random_llama_blocks(p, rng, std);
  p.out_norm = Parameter("output_norm.weight", filled(d, 1.0f), false);
  if (gpt2) p.out_norm_b = Parameter("output_norm.bias", filled(d, 0.0f), false);
  if (!cfg.tied_embeddings) p.output = Parameter("output.weight", normal({cfg.vocab_size, d}, std, rng));
  return p;
}

TransformerParams TransformerParams::from_model_file(const ModelFile& m) {
  check_trainable(m.config);
  SHRINK_CHECK(m.packed.empty(), m.path, ": pack-quantized weights cannot be trained as f32 master weights");
  TransformerParams p;
  p.cfg = m.config;
  const bool gpt2 = p.cfg.arch == Arch::GPT2;
  // to(F32) is a deep copy (dequantizing block types), so training never writes into an mmap'd file.
  auto get = [&](const std::string& name, bool decay = true) { return Parameter(name, m.get(name).to(DType::F32), decay); };
  // A block Linear: dense, or (compress/lowrank's output) its two factors, the Parameter a name only.
  auto linear = [&](const std::string& name) {
    const std::string base = name.substr(0, name.size() - 7);  // without ".weight"
    if (m.find(name) || !m.find(lowrank_u_name(base))) return get(name);
    p.factors[name] = LowRankFactors{get(lowrank_u_name(base)), get(lowrank_v_name(base))};
    Parameter w;
    w.name = name;
    return w;
  };
  p.tok_embd = get("token_embd.weight");
  if (gpt2) p.pos_embd = get("position_embd.weight");
  p.blocks.resize(p.cfg.n_layers);
  for (int l = 0; l < p.cfg.n_layers; ++l) {
    const std::string s = "blk." + std::to_string(l) + ".";
    BlockParams& b = p.blocks[l];
    b.attn_norm = get(s + "attn_norm.weight", false);
    b.wo = linear(s + "attn_output.weight");
    b.ffn_norm = get(s + "ffn_norm.weight", false);
    b.w_up = linear(s + "ffn_up.weight");
    b.w_down = linear(s + "ffn_down.weight");
    if (gpt2) {
      b.attn_norm_b = get(s + "attn_norm.bias", false);
      b.wqkv = linear(s + "attn_qkv.weight");
      b.bqkv = get(s + "attn_qkv.bias", false);
      b.bo = get(s + "attn_output.bias", false);
      b.ffn_norm_b = get(s + "ffn_norm.bias", false);
      b.b_up = get(s + "ffn_up.bias", false);
      b.b_down = get(s + "ffn_down.bias", false);
    } else {
      b.wq = linear(s + "attn_q.weight");
      b.wk = linear(s + "attn_k.weight");
      b.wv = linear(s + "attn_v.weight");
      b.w_gate = linear(s + "ffn_gate.weight");
    }
  }
  p.out_norm = get("output_norm.weight", false);
  if (gpt2) p.out_norm_b = get("output_norm.bias", false);
  if (!p.cfg.tied_embeddings) p.output = get("output.weight");
  return p;
}

ModelFile TransformerParams::to_model_file(DType dtype) {
  ModelFile m;
  m.config = cfg;
  m.format = "gguf";
  for (Parameter* q : all())
    m.tensors[q->name] = q->value.ndim() == 2 && dtype != DType::F32 ? q->value.to(dtype) : q->value;
  check_model_tensors(m);
  return m;
}

}  // namespace shrink::train
