#include "train/llama_graph.h"

#include "core/error.h"
#include "train/graph_builder.h"

namespace shrink::train {

namespace {

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
  SHRINK_CHECK(p.cfg.arch == Arch::Llama, "llama_logits: the model is ", arch_name(p.cfg.arch), ", not llama");
  const std::vector<int32_t> pos = positions_of(int64_t(tokens.size()), seq_len, "llama_logits");
  const GraphBuilder gb{g, opt, p.factors};
  if (opt.taps) opt.taps->assign(p.blocks.size(), BlockTaps{});
  Var emb = gb.token_table(p.tok_embd);
  Var x = embedding(emb, tokens);
  for (size_t l = 0; l < p.blocks.size(); ++l)
    x = llama_block(gb, p.cfg, int(l), p.blocks[l], x, pos, seq_len, opt.taps ? &(*opt.taps)[l] : nullptr);
  Var xn = rmsnorm(x, gb.weight(p.out_norm), p.cfg.norm_eps);
  return gb.head(p.output, p.tok_embd, emb, xn);  // a tied head is the (fake-quantized) table itself
}

}  // namespace shrink::train
