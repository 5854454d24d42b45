#include "train/gpt2_graph.h"

#include "core/error.h"
#include "train/graph_builder.h"

namespace shrink::train {

namespace {

// One block, the same sequence of steps as Transformer::forward_block for
// Arch::GPT2: x += attn(LN(x)); x += W_down·gelu(W_up·LN(x) + b_up) + b_down.
Var gpt2_block(const GraphBuilder& gb, const ModelConfig& c, int layer, BlockParams& b, Var x, int64_t seq_len,
               BlockTaps* taps) {
  const int heads = c.heads(layer), kv_heads = c.kv_heads(layer);
  const int64_t qd = c.q_dim(layer), kvd = c.kv_dim(layer);
  Var xn = layernorm(x, gb.weight(b.attn_norm), gb.weight(b.attn_norm_b), c.norm_eps);
  Var qkv = gb.linear_of(b.wqkv, xn, &b.bqkv);  // [n x (q + 2·kv)], rows {q; k; v} of the fused weight
  Var q = columns(qkv, 0, qd), k = columns(qkv, qd, kvd), v = columns(qkv, qd + kvd, kvd);
  Var att = attention(q, k, v, heads, kv_heads, c.head_dim, seq_len);
  x = add(x, gb.linear_of(b.wo, att, &b.bo));
  xn = layernorm(x, gb.weight(b.ffn_norm), gb.weight(b.ffn_norm_b), c.norm_eps);
  Var h = gelu(gb.linear_of(b.w_up, xn, &b.b_up));
  Var out = add(x, gb.linear_of(b.w_down, h, &b.b_down));
  if (taps) *taps = BlockTaps{out, q, k, v};
  return out;
}

}  // namespace

Var gpt2_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len,
                const GraphOptions& opt) {
  SHRINK_CHECK(p.cfg.arch == Arch::GPT2, "gpt2_logits: the model is ", arch_name(p.cfg.arch), ", not gpt2");
  SHRINK_CHECK(seq_len <= p.pos_embd.value.dim(0), "gpt2_logits: sequences of ", seq_len, " tokens exceed the model's ",
               p.pos_embd.value.dim(0), " learned positions");
  const std::vector<int32_t> pos = positions_of(int64_t(tokens.size()), seq_len, "gpt2_logits");
  const GraphBuilder gb{g, opt, p.factors};
  if (opt.taps) opt.taps->assign(p.blocks.size(), BlockTaps{});
  Var emb = gb.token_table(p.tok_embd);
  Var x = add(embedding(emb, tokens), embedding(gb.weight(p.pos_embd), pos));
  for (size_t l = 0; l < p.blocks.size(); ++l)
    x = gpt2_block(gb, p.cfg, int(l), p.blocks[l], x, seq_len, opt.taps ? &(*opt.taps)[l] : nullptr);
  Var xn = layernorm(x, gb.weight(p.out_norm), gb.weight(p.out_norm_b), p.cfg.norm_eps);
  return gb.head(p.output, p.tok_embd, emb, xn);  // a tied head is the (fake-quantized) table itself
}

}  // namespace shrink::train
