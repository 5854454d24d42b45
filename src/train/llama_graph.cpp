#include "train/llama_graph.h"

#include <cmath>
#include <random>

#include "core/error.h"
#include "train/fake_quant.h"
#include "train/lora.h"
#include "train/ops.h"

namespace shrink::train {

std::vector<Parameter*> TransformerParams::all() {
  std::vector<Parameter*> out{&tok_embd};
  for (auto& b : blocks)
    for (Parameter* q : {&b.attn_norm, &b.wq, &b.wk, &b.wv, &b.wo, &b.ffn_norm, &b.w_gate, &b.w_up, &b.w_down})
      out.push_back(q);
  out.push_back(&out_norm);
  if (!output.value.empty()) out.push_back(&output);
  return out;
}

std::vector<Parameter*> TransformerParams::linears() {
  std::vector<Parameter*> out;
  for (auto& b : blocks)
    for (Parameter* q : {&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down}) out.push_back(q);
  if (!output.value.empty()) out.push_back(&output);
  return out;
}

std::string linear_role(const std::string& name) {
  if (name == "output.weight") return "head";
  if (name.rfind("blk.", 0) != 0) return "";
  static const std::pair<std::string, const char*> roles[] = {
      {".attn_q.weight", "q"},      {".attn_k.weight", "k"},      {".attn_v.weight", "v"},
      {".attn_output.weight", "o"}, {".ffn_gate.weight", "gate"}, {".ffn_up.weight", "up"},
      {".ffn_down.weight", "down"}};
  for (const auto& [suffix, role] : roles)
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return role;
  return "";
}

int64_t TransformerParams::count() {
  int64_t n = 0;
  for (Parameter* q : all()) n += q->numel();
  return n;
}

namespace {

Tensor normal(std::vector<int64_t> shape, float std, std::mt19937_64& rng) {
  Tensor t = Tensor::alloc(DType::F32, std::move(shape));
  std::normal_distribution<float> dist(0.0f, std);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = dist(rng);
  return t;
}

Tensor ones(int64_t n) {
  Tensor t = Tensor::alloc(DType::F32, {n});
  for (int64_t i = 0; i < n; ++i) t.f32()[i] = 1.0f;
  return t;
}

void check_llama(const ModelConfig& c) {
  SHRINK_CHECK(c.arch == Arch::Llama, "the training graph covers the Llama architecture only (GPT-2: not yet)");
  SHRINK_CHECK(!c.qkv_bias, "the training graph has no q/k/v biases yet");
  SHRINK_CHECK(c.head_dim > 0 && c.n_kv_heads > 0, "model config is not validated (head_dim/n_kv_heads are 0)");
}

}  // namespace

TransformerParams TransformerParams::random(const ModelConfig& cfg, uint64_t seed, float std) {
  check_llama(cfg);
  std::mt19937_64 rng(seed);
  TransformerParams p;
  p.cfg = cfg;
  const int64_t d = cfg.dim, h = cfg.hidden_dim, q = cfg.q_dim(), kv = cfg.kv_dim();
  const float out_std = std / std::sqrt(2.0f * cfg.n_layers);
  p.tok_embd = Parameter("token_embd.weight", normal({cfg.vocab_size, d}, std, rng));
  p.blocks.resize(cfg.n_layers);
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string s = "blk." + std::to_string(l) + ".";
    BlockParams& b = p.blocks[l];
    b.attn_norm = Parameter(s + "attn_norm.weight", ones(d), false);
    b.wq = Parameter(s + "attn_q.weight", normal({q, d}, std, rng));
    b.wk = Parameter(s + "attn_k.weight", normal({kv, d}, std, rng));
    b.wv = Parameter(s + "attn_v.weight", normal({kv, d}, std, rng));
    b.wo = Parameter(s + "attn_output.weight", normal({d, q}, out_std, rng));
    b.ffn_norm = Parameter(s + "ffn_norm.weight", ones(d), false);
    b.w_gate = Parameter(s + "ffn_gate.weight", normal({h, d}, std, rng));
    b.w_up = Parameter(s + "ffn_up.weight", normal({h, d}, std, rng));
    b.w_down = Parameter(s + "ffn_down.weight", normal({d, h}, out_std, rng));
  }
  p.out_norm = Parameter("output_norm.weight", ones(d), false);
  if (!cfg.tied_embeddings) p.output = Parameter("output.weight", normal({cfg.vocab_size, d}, std, rng));
  return p;
}

TransformerParams TransformerParams::from_model_file(const ModelFile& m) {
  check_llama(m.config);
  SHRINK_CHECK(m.packed.empty(), m.path, ": pack-quantized weights cannot be trained as f32 master weights");
  TransformerParams p;
  p.cfg = m.config;
  // to(F32) is a deep copy (dequantizing block types), so training never writes into an mmap'd file.
  auto get = [&](const std::string& name, bool decay = true) { return Parameter(name, m.get(name).to(DType::F32), decay); };
  p.tok_embd = get("token_embd.weight");
  p.blocks.resize(p.cfg.n_layers);
  for (int l = 0; l < p.cfg.n_layers; ++l) {
    const std::string s = "blk." + std::to_string(l) + ".";
    BlockParams& b = p.blocks[l];
    b.attn_norm = get(s + "attn_norm.weight", false);
    b.wq = get(s + "attn_q.weight");
    b.wk = get(s + "attn_k.weight");
    b.wv = get(s + "attn_v.weight");
    b.wo = get(s + "attn_output.weight");
    b.ffn_norm = get(s + "ffn_norm.weight", false);
    b.w_gate = get(s + "ffn_gate.weight");
    b.w_up = get(s + "ffn_up.weight");
    b.w_down = get(s + "ffn_down.weight");
  }
  p.out_norm = get("output_norm.weight", false);
  if (!p.cfg.tied_embeddings) p.output = get("output.weight");
  return p;
}

namespace {

// Builds the graph's leaves and Linears the way GraphOptions asks.
struct GraphBuilder {
  Graph& g;
  const GraphOptions& opt;

  Var weight(Parameter& p) const { return opt.freeze_base ? g.constant(p.value) : g.param(p); }

  // x · Wᵀ, W fake-quantized and a LoRA term added where those cover W.
  Var linear_of(Parameter& w, Var x) const {
    Var wv = weight(w);
    if (opt.fake_quant && opt.fake_quant->covers(w.name)) wv = opt.fake_quant->apply(g, w.name, wv);
    Var y = linear(x, wv);
    if (opt.lora)
      if (Var delta = opt.lora->delta(g, w.name, x)) y = add(y, delta);
    return y;
  }
};

// One block, the same sequence of steps as Transformer::forward_block. Head
// counts are the layer's own (structurally pruned models differ per layer).
Var llama_block(const GraphBuilder& gb, const ModelConfig& c, int layer, BlockParams& b, Var x,
                const std::vector<int32_t>& pos, int64_t seq_len, BlockTaps* taps) {
  const bool inter = c.rope_style == RopeStyle::Interleaved;
  const int heads = c.heads(layer), kv_heads = c.kv_heads(layer);
  Var xn = rmsnorm(x, gb.weight(b.attn_norm), c.norm_eps);
  Var q = rope(gb.linear_of(b.wq, xn), heads, c.head_dim, pos, c.rope_theta, c.rope_scale, inter);
  Var k = rope(gb.linear_of(b.wk, xn), kv_heads, c.head_dim, pos, c.rope_theta, c.rope_scale, inter);
  Var v = gb.linear_of(b.wv, xn);
  Var att = attention(q, k, v, heads, kv_heads, c.head_dim, seq_len);
  x = add(x, gb.linear_of(b.wo, att));
  xn = rmsnorm(x, gb.weight(b.ffn_norm), c.norm_eps);
  Var h = swiglu(gb.linear_of(b.w_gate, xn), gb.linear_of(b.w_up, xn));
  Var out = add(x, gb.linear_of(b.w_down, h));
  if (taps) *taps = BlockTaps{out, q, k, v};
  return out;
}

}  // namespace

Var llama_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len) {
  return llama_logits(g, p, tokens, seq_len, GraphOptions{});
}

Var llama_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len,
                 const GraphOptions& opt) {
  const int64_t n = int64_t(tokens.size());
  SHRINK_CHECK(seq_len > 0 && n > 0 && n % seq_len == 0, "llama_logits: ", n, " tokens are not whole sequences of ",
               seq_len);
  std::vector<int32_t> pos(n);
  for (int64_t t = 0; t < n; ++t) pos[t] = int32_t(t % seq_len);
  const GraphBuilder gb{g, opt};
  if (opt.taps) opt.taps->assign(p.blocks.size(), BlockTaps{});
  Var emb = gb.weight(p.tok_embd);
  if (opt.fake_quant && opt.fake_quant->covers(p.tok_embd.name)) emb = opt.fake_quant->apply(g, p.tok_embd.name, emb);
  Var x = embedding(emb, tokens);
  for (size_t l = 0; l < p.blocks.size(); ++l)
    x = llama_block(gb, p.cfg, int(l), p.blocks[l], x, pos, seq_len, opt.taps ? &(*opt.taps)[l] : nullptr);
  Var xn = rmsnorm(x, gb.weight(p.out_norm), p.cfg.norm_eps);
  // A tied head is the embedding table itself (fake-quantized with it, if at all); LoRA does not cover it.
  return p.output.value.empty() ? linear(xn, emb) : gb.linear_of(p.output, xn);
}

}  // namespace shrink::train
