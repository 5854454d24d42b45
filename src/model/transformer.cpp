#include "model/transformer.h"

#include <cstring>

#include "core/error.h"
#include "kernels/attention_q8.h"
#include "kernels/ops.h"
#include "model/group_weight.h"
#include "model/lowrank_weight.h"
#include "model/sparse_mask_weight.h"
#include "model/sparse_weight.h"
#include "model/int8_weight.h"

namespace shrink {

namespace {
Tensor f32_or_empty(const ModelFile& m, const std::string& name) {
  const Tensor* t = m.find(name);
  if (!t) return {};
  return t->dtype == DType::F32 ? *t : t->to(DType::F32);
}

// Linear `base` of the file: low-rank factors (BASE.weight.lr_u / lr_v),
// compressed N:M sparse (BASE.weight.nm_val / nm_idx / nm_meta), bitmask sparse
// (BASE.weight.mask_bits / mask_val / mask_meta), pack-quantized (group weight), int-quantized (W8A8) or dense / block-quantized.
Linear file_linear(const ModelFile& m, const std::string& base, const Tensor* bias) {
  const Tensor b = bias ? bias->to(DType::F32) : Tensor();
  if (const Tensor* u = m.find(lowrank_u_name(base)))
    return Linear(base, std::make_shared<LowRankWeight>(*u, m.get(lowrank_v_name(base))), b);
  if (const Tensor* v = m.find(sparse_values_name(base)))
    return Linear(base,
                  sparse_weight_from_tensors(*v, m.get(sparse_index_name(base)), m.get(sparse_meta_name(base)),
                                             m.path + ": " + base),
                  b);
  if (const Tensor* bits = m.find(mask_bits_name(base)))
    return Linear(base,
                  mask_weight_from_tensors(*bits, m.get(mask_values_name(base)), m.get(mask_meta_name(base)),
                                           m.path + ": " + base),
                  b);
  if (m.packed.count(base)) return Linear(base, group_weight_from_file(m, base), b);
  if (m.int8.count(base)) return Linear(base, int8_weight_from_file(m, base), b);
  return Linear::dense(base, m.get(base + ".weight"), bias);
}
}  // namespace

Transformer::Transformer(const ModelFile& m) : cfg_(m.config) {
  const bool gpt2 = cfg_.arch == Arch::GPT2;
  tok_embd_ = m.get("token_embd.weight");
  // Rows are looked up and widened one at a time, so a block-quantized table
  // (llama.cpp's Q4_K_M stores it as Q4_K/Q6_K) works when rows are whole blocks.
  SHRINK_CHECK(tok_embd_.dim(1) % dtype_traits(tok_embd_.dtype).block_elems == 0, m.path, ": token embedding rows of ",
               tok_embd_.dim(1), " do not split into ", dtype_name(tok_embd_.dtype), " blocks");
  if (gpt2) pos_embd_ = f32_or_empty(m, "position_embd.weight");
  out_norm_ = f32_or_empty(m, "output_norm.weight");
  out_norm_b_ = f32_or_empty(m, "output_norm.bias");
  output_ = cfg_.tied_embeddings ? Linear::dense("output", tok_embd_) : file_linear(m, "output", nullptr);
  blocks_.resize(cfg_.n_layers);
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Block& b = blocks_[l];
    auto lin = [&](const std::string& n) { return file_linear(m, p + n, m.find(p + n + ".bias")); };
    b.attn_norm = f32_or_empty(m, p + "attn_norm.weight");
    b.attn_norm_b = f32_or_empty(m, p + "attn_norm.bias");
    b.ffn_norm = f32_or_empty(m, p + "ffn_norm.weight");
    b.ffn_norm_b = f32_or_empty(m, p + "ffn_norm.bias");
    if (gpt2) {
      b.wqkv = lin("attn_qkv");
    } else {
      b.wq = lin("attn_q");
      b.wk = lin("attn_k");
      b.wv = lin("attn_v");
      b.w_gate = lin("ffn_gate");
    }
    b.wo = lin("attn_output");
    b.w_up = lin("ffn_up");
    b.w_down = lin("ffn_down");
  }
}

void Transformer::set_token_embedding(Tensor t) {
  SHRINK_CHECK(t.ndim() == 2 && t.dim(0) == tok_embd_.dim(0) && t.dim(1) == tok_embd_.dim(1),
               "token embedding replacement has the wrong shape");
  SHRINK_CHECK(t.dim(1) % dtype_traits(t.dtype).block_elems == 0, "token embedding rows of ", t.dim(1),
               " do not split into ", dtype_name(t.dtype), " blocks");
  tok_embd_ = std::move(t);
  if (cfg_.tied_embeddings) output_.set_weight(make_weight(tok_embd_));
}

void Transformer::export_to(ModelFile& m, bool group_packed) {
  auto put = [&](const Linear& l) {
    const std::string key = l.name() + ".weight";
    const auto* g = dynamic_cast<const GroupQuantWeight*>(&l.weight());
    const auto* i8 = dynamic_cast<const Int8Weight*>(&l.weight());
    m.tensors.erase(lowrank_u_name(l.name())), m.tensors.erase(lowrank_v_name(l.name()));  // a stale low-rank form
    for (const auto& stale : {sparse_values_name(l.name()), sparse_index_name(l.name()), sparse_meta_name(l.name())})
      m.tensors.erase(stale);  // a stale N:M form
    for (const auto& stale : {mask_bits_name(l.name()), mask_values_name(l.name()), mask_meta_name(l.name())})
      m.tensors.erase(stale);  // a stale bitmask form
    if (const auto* lr = dynamic_cast<const LowRankWeight*>(&l.weight())) {
      m.tensors[lowrank_u_name(l.name())] = lr->u();
      m.tensors[lowrank_v_name(l.name())] = lr->v();
      m.tensors.erase(key);
    } else if (const auto* sp = dynamic_cast<const SparseNmWeight*>(&l.weight())) {
      m.tensors[sparse_values_name(l.name())] = sp->values();
      m.tensors[sparse_index_name(l.name())] = sp->indices();
      m.tensors[sparse_meta_name(l.name())] = sparse_meta_tensor(sp->shape());
      m.tensors.erase(key);
    } else if (const auto* mw = dynamic_cast<const SparseMaskWeight*>(&l.weight())) {
      m.tensors[mask_bits_name(l.name())] = mask_bits_tensor(mw->matrix());
      m.tensors[mask_values_name(l.name())] = mask_values_tensor(mw->matrix());
      m.tensors[mask_meta_name(l.name())] = mask_meta_tensor(mw->matrix());
      m.tensors.erase(key);
    } else if (g && group_packed) {
      group_weight_to_file(*g, l.name(), m);
    } else if (i8 && group_packed) {
      int8_weight_to_file(*i8, l.name(), m);
    } else {
      if (const auto* d = dynamic_cast<const DenseWeight*>(&l.weight()))
        m.tensors[key] = d->tensor();
      else if (const auto* b = dynamic_cast<const BlockWeight*>(&l.weight()))
        m.tensors[key] = b->tensor();
      else
        fail(l.name(), ": a ", l.weight().kind(), " weight has no tensor form in GGUF/HF files",
             g || i8 ? " (group formats and W8A8: write a Hugging Face directory)" : "");
      for (const char* suffix : kPackedSuffixes) m.tensors.erase(l.name() + "." + suffix);  // a stale quantized form
      m.packed.erase(l.name());
      m.int8.erase(l.name());
    }
    if (!l.bias().empty()) m.tensors[l.name() + ".bias"] = l.bias();
  };
  auto put_norm = [&](const std::string& key, const Tensor& t) {
    if (!t.empty()) m.tensors[key] = t;
  };
  for (int i = 0; i < cfg_.n_layers; ++i) {
    const Block& b = blocks_[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    for (const Linear* l : {&b.wq, &b.wk, &b.wv, &b.wqkv, &b.wo, &b.w_gate, &b.w_up, &b.w_down})
      if (l->valid()) put(*l);
    put_norm(p + "attn_norm.weight", b.attn_norm);
    put_norm(p + "attn_norm.bias", b.attn_norm_b);
    put_norm(p + "ffn_norm.weight", b.ffn_norm);
    put_norm(p + "ffn_norm.bias", b.ffn_norm_b);
  }
  m.tensors["token_embd.weight"] = tok_embd_;
  if (!cfg_.tied_embeddings) put(output_);
}

const char* kv_type_name(KvType t) { return t == KvType::Int8 ? "int8" : "f32"; }

std::vector<std::string> kv_type_names() { return {"f32", "int8"}; }

KvType parse_kv_type(const std::string& name) {
  if (name == "f32") return KvType::F32;
  if (name == "int8") return KvType::Int8;
  fail("unknown KV-cache type '", name, "' (known: f32, int8)");
}

void KVCache::store(int layer, int pos, int n, const float* ks, const float* vs, int64_t stride) {
  SHRINK_CHECK(layer >= 0 && layer < n_layers && pos >= 0 && n >= 0 && pos + n <= max_len, "KV cache store of ", n,
               " tokens at position ", pos, " of layer ", layer, " is outside the cache (", n_layers, " layers x ",
               max_len, ")");
  const int64_t panel = int64_t(max_len) * head_dim;
  const int kvh = kv_heads_of(layer);
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < kvh; ++h) {
      const float* kx = ks + t * stride + int64_t(h) * head_dim;
      const float* vx = vs + t * stride + int64_t(h) * head_dim;
      const int64_t at = layer_offset(layer) + h * panel + int64_t(pos + t) * head_dim;
      if (type == KvType::F32) {
        std::memcpy(k.data() + at, kx, sizeof(float) * head_dim);
        std::memcpy(v.data() + at, vx, sizeof(float) * head_dim);
      } else {
        const int64_t s = layer_scale_offset(layer) + int64_t(h) * max_len + pos + t;
        kernels::quantize_rows_q8(kx, qk.data() + at, sk.data() + s, 1, head_dim);
        kernels::quantize_rows_q8(vx, qv.data() + at, sv.data() + s, 1, head_dim);
      }
    }
  }
}

int64_t KVCache::bytes() const {
  return int64_t(k.size() + v.size() + sk.size() + sv.size()) * 4 + int64_t(qk.size() + qv.size());
}

KVCache Transformer::new_cache(int max_len, KvType type) const {
  SHRINK_CHECK(max_len > 0, "KV cache of ", max_len, " positions");
  KVCache c;
  c.n_layers = cfg_.n_layers;
  c.max_len = max_len;
  c.kv_dim = cfg_.kv_dim();
  c.n_kv_heads = cfg_.n_kv_heads;
  c.head_dim = cfg_.head_dim;
  c.type = type;
  if (!cfg_.uniform()) {  // pruned layers keep only their own KV heads' panels
    c.layer_heads_before.push_back(0);
    for (int l = 0; l < cfg_.n_layers; ++l) {
      c.layer_kv_heads.push_back(cfg_.kv_heads(l));
      c.layer_heads_before.push_back(c.layer_heads_before.back() + cfg_.kv_heads(l));
    }
  }
  const size_t panels = size_t(c.heads_before(c.n_layers)), n = panels * max_len;
  if (type == KvType::F32) {
    c.k.assign(n * c.head_dim, 0.0f);
    c.v.assign(n * c.head_dim, 0.0f);
  } else {
    c.qk.assign(n * c.head_dim, 0);
    c.qv.assign(n * c.head_dim, 0);
    c.sk.assign(n, 0.0f);
    c.sv.assign(n, 0.0f);
  }
  return c;
}

std::vector<Linear*> Transformer::linears() {
  std::vector<Linear*> out;
  for (auto& b : blocks_)
    for (Linear* l : {&b.wq, &b.wk, &b.wv, &b.wqkv, &b.wo, &b.w_gate, &b.w_up, &b.w_down})
      if (l->valid()) out.push_back(l);
  out.push_back(&output_);
  return out;
}

int64_t Transformer::weight_bytes() const {
  int64_t bytes = tok_embd_.nbytes() + pos_embd_.nbytes() * !pos_embd_.empty();
  auto self = const_cast<Transformer*>(this);
  for (Linear* l : self->linears())
    if (!(cfg_.tied_embeddings && l == &self->output_)) bytes += l->bytes();
  return bytes;
}

int64_t Transformer::decode_bytes() const {
  int64_t bytes = tok_embd_.nbytes() / cfg_.vocab_size;
  for (Linear* l : const_cast<Transformer*>(this)->linears()) bytes += l->bytes();
  return bytes;
}

void Transformer::reserve(int n) {
  if (n <= cap_) return;
  cap_ = n;
  const size_t d = cfg_.dim, q = cfg_.q_dim(), kv = cfg_.kv_dim(), h = cfg_.hidden_dim;
  x_.resize(n * d);
  xn_.resize(n * d);
  q_.resize(n * q);
  k_.resize(n * kv);
  v_.resize(n * kv);
  att_.resize(n * q);
  h1_.resize(n * h);
  h2_.resize(n * h);
  qkv_.resize(n * (q + 2 * kv));
}

void Transformer::run(const Linear& l, const float* x, float* y, int n) {
  if (hook) hook(l, x, n);
  l.forward(x, y, n);
}

void Transformer::run_shared(const std::vector<const Linear*>& ls, const float* x, const std::vector<float*>& ys, int n) {
  if (hook)
    for (const Linear* l : ls) hook(*l, x, n);
  forward_shared_input(ls, x, ys, n);
}

void Transformer::norm(const Tensor& w, const Tensor& bias, const float* x, float* out, int n) const {
  if (cfg_.arch == Arch::GPT2)
    kernels::layernorm(x, w.f32(), bias.empty() ? nullptr : bias.f32(), out, n, cfg_.dim, cfg_.norm_eps);
  else
    kernels::rmsnorm(x, w.f32(), out, n, cfg_.dim, cfg_.norm_eps);
}

void Transformer::embed(const int32_t* tokens, int n, int pos0, float* x) const {
  const int64_t d = cfg_.dim;
  for (int t = 0; t < n; ++t) {
    SHRINK_CHECK(tokens[t] >= 0 && tokens[t] < cfg_.vocab_size, "token id ", tokens[t], " is outside the vocabulary (",
                 cfg_.vocab_size, ")");
    const char* row = static_cast<const char*>(tok_embd_.data) + tokens[t] * dtype_bytes(tok_embd_.dtype, d);
    convert_to_f32(tok_embd_.dtype, row, x + t * d, d);
    if (!pos_embd_.empty()) {
      SHRINK_CHECK(pos0 + t < pos_embd_.dim(0), "position ", pos0 + t, " exceeds the model's ", pos_embd_.dim(0),
                   " learned positions");
      kernels::add(x + t * d, pos_embd_.f32() + (pos0 + t) * d, d);
    }
  }
}

void Transformer::attention_llama(Block& b, int layer, int n, KVCache& cache, const int32_t* pos) {
  const int pos0 = cache.len;
  run_shared({&b.wq, &b.wk, &b.wv}, xn_.data(), {q_.data(), k_.data(), v_.data()}, n);
  const bool inter = cfg_.rope_style == RopeStyle::Interleaved;
  kernels::rope(q_.data(), n, cfg_.heads(layer), cfg_.head_dim, pos, cfg_.rope_theta, cfg_.rope_scale, inter);
  kernels::rope(k_.data(), n, cfg_.kv_heads(layer), cfg_.head_dim, pos, cfg_.rope_theta, cfg_.rope_scale, inter);
  cache.store(layer, pos0, n, k_.data(), v_.data(), cfg_.kv_dim(layer));
  attend(layer, n, cache);
}

void Transformer::attention_gpt2(Block& b, int layer, int n, KVCache& cache) {
  const int pos0 = cache.len;
  const int64_t qd = cfg_.q_dim(layer), kvd = cfg_.kv_dim(layer), row = qd + 2 * kvd;
  run(b.wqkv, xn_.data(), qkv_.data(), n);
  for (int t = 0; t < n; ++t) std::memcpy(q_.data() + t * qd, qkv_.data() + t * row, sizeof(float) * qd);
  cache.store(layer, pos0, n, qkv_.data() + qd, qkv_.data() + qd + kvd, row);
  attend(layer, n, cache);
}

void Transformer::attend(int layer, int n, KVCache& cache) {  // q_ and att_ are [n x q_dim(layer)]
  const int pos0 = cache.len;
  const int64_t off = cache.layer_offset(layer), cap = cache.max_len;
  if (cache.type == KvType::F32) {
    kernels::attention(q_.data(), cache.k.data() + off, cache.v.data() + off, att_.data(), n, pos0, cfg_.heads(layer),
                       cfg_.kv_heads(layer), cfg_.head_dim, cfg_.head_dim, cap * cfg_.head_dim);
  } else {
    const int64_t soff = cache.layer_scale_offset(layer);
    kernels::attention_q8(q_.data(), cache.qk.data() + off, cache.sk.data() + soff, cache.qv.data() + off,
                          cache.sv.data() + soff, att_.data(), n, pos0, cfg_.heads(layer), cfg_.kv_heads(layer), cfg_.head_dim,
                          cap);
  }
}

void Transformer::ffn(Block& b, int layer, int n) {
  const int64_t h = cfg_.ffn_dim(layer);
  if (cfg_.arch == Arch::GPT2) {
    run(b.w_up, xn_.data(), h1_.data(), n);
    kernels::gelu_tanh(h1_.data(), n * h);
  } else {
    run_shared({&b.w_gate, &b.w_up}, xn_.data(), {h1_.data(), h2_.data()}, n);
    kernels::silu_mul(h1_.data(), h2_.data(), n * h);
  }
  run(b.w_down, h1_.data(), xn_.data(), n);
}

void Transformer::forward_block(int layer, float* x, int n, KVCache& cache) {
  SHRINK_CHECK(cache.n_layers == cfg_.n_layers && cache.n_kv_heads == cfg_.n_kv_heads && cache.head_dim == cfg_.head_dim &&
                   cache.kv_heads_of(layer) == cfg_.kv_heads(layer),
               "the KV cache was made for another model shape");
  SHRINK_CHECK(cache.len + n <= cache.max_len, "context overflow: ", cache.len, " + ", n, " tokens exceed the cache of ",
               cache.max_len);
  reserve(n);
  const int64_t d = cfg_.dim;
  pos_.resize(n);
  for (int t = 0; t < n; ++t) pos_[t] = cache.len + t;
  Block& b = blocks_[layer];
  norm(b.attn_norm, b.attn_norm_b, x, xn_.data(), n);
  if (cfg_.arch == Arch::GPT2)
    attention_gpt2(b, layer, n, cache);
  else
    attention_llama(b, layer, n, cache, pos_.data());
  run(b.wo, att_.data(), xn_.data(), n);
  kernels::add(x, xn_.data(), n * d);
  norm(b.ffn_norm, b.ffn_norm_b, x, xn_.data(), n);
  ffn(b, layer, n);
  kernels::add(x, xn_.data(), n * d);
}

void Transformer::forward_head(const float* x, int n, float* logits) {
  reserve(n);
  norm(out_norm_, out_norm_b_, x, xn_.data(), n);
  run(output_, xn_.data(), logits, n);
}

void Transformer::forward(const int32_t* tokens, int n, KVCache& cache, float* logits, bool all_logits) {
  SHRINK_CHECK(n > 0, "forward of zero tokens");
  SHRINK_CHECK(cache.len + n <= cache.max_len, "context overflow: ", cache.len, " + ", n, " tokens exceed the cache of ",
               cache.max_len);
  reserve(n);
  embed(tokens, n, cache.len, x_.data());
  for (int l = 0; l < cfg_.n_layers; ++l) forward_block(l, x_.data(), n, cache);
  cache.len += n;
  const int first = all_logits ? 0 : n - 1;
  forward_head(x_.data() + int64_t(first) * cfg_.dim, n - first, logits);
}

void save_quantized_hf(Transformer& model, const ModelFile& original, const std::string& dir, DType dtype, bool exact) {
  ModelFile out = original;  // config, tokenizer, path (tokenizer files are copied from beside it), norms
  model.export_to(out, true);
  save_hf(out, dir, dtype, exact);
}

}  // namespace shrink
