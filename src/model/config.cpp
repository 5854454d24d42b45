#include "model/config.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"

namespace shrink {

std::string arch_name(Arch a) { return a == Arch::Llama ? "llama" : "gpt2"; }

Arch parse_arch(const std::string& s) {
  if (s == "llama") return Arch::Llama;
  if (s == "gpt2") return Arch::GPT2;
  fail("unsupported architecture '", s, "' (supported: llama, gpt2)");
}

void ModelConfig::validate(const std::string& source) {
  SHRINK_CHECK(dim > 0 && hidden_dim > 0 && n_layers > 0 && n_heads > 0 && vocab_size > 0, source,
               ": invalid model shape (dim ", dim, ", hidden ", hidden_dim, ", layers ", n_layers, ", heads ",
               n_heads, ", vocab ", vocab_size, ")");
  if (n_kv_heads == 0) n_kv_heads = n_heads;
  if (head_dim == 0) {
    SHRINK_CHECK(dim % n_heads == 0, source, ": dim ", dim, " is not divisible by ", n_heads, " heads");
    head_dim = dim / n_heads;
  }
  SHRINK_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, source, ": ", n_heads,
               " heads are not a multiple of ", n_kv_heads, " KV heads");
  SHRINK_CHECK(head_dim % 2 == 0, source, ": head_dim ", head_dim, " must be even for RoPE");
  for (const auto* v : {&layer_heads, &layer_kv_heads, &layer_hidden})
    SHRINK_CHECK(v->empty() || int(v->size()) == n_layers, source, ": per-layer sizes have ", v->size(),
                 " entries for ", n_layers, " layers");
  for (int l = 0; l < n_layers; ++l) {
    SHRINK_CHECK(heads(l) > 0 && kv_heads(l) > 0 && heads(l) % kv_heads(l) == 0 && heads(l) <= n_heads &&
                     kv_heads(l) <= n_kv_heads && ffn_dim(l) > 0 && ffn_dim(l) <= hidden_dim,
                 source, ": layer ", l, " has ", heads(l), " heads, ", kv_heads(l), " KV heads, FFN width ", ffn_dim(l),
                 " (each must be positive, heads a multiple of KV heads, and at most the model's maxima)");
  }
  SHRINK_CHECK(n_layers <= 4096 && dim <= (1 << 20) && hidden_dim <= (1 << 22) && vocab_size <= (1 << 24),
               source, ": implausible model shape");
  SHRINK_CHECK(max_seq_len >= 0 && norm_eps > 0 && rope_theta > 0 && rope_scale > 0, source,
               ": invalid seq_len / eps / rope settings");
}

void ModelConfig::set_layer_sizes(std::vector<int> h, std::vector<int> kv, std::vector<int> ff) {
  SHRINK_CHECK(int(h.size()) == n_layers && int(kv.size()) == n_layers && int(ff.size()) == n_layers,
               "per-layer sizes need one entry per layer (", n_layers, ")");
  n_heads = *std::max_element(h.begin(), h.end());
  n_kv_heads = *std::max_element(kv.begin(), kv.end());
  hidden_dim = *std::max_element(ff.begin(), ff.end());
  auto same = [](const std::vector<int>& v) { return std::all_of(v.begin(), v.end(), [&](int x) { return x == v[0]; }); };
  if (same(h) && same(kv) && same(ff)) {
    layer_heads.clear(), layer_kv_heads.clear(), layer_hidden.clear();
  } else {
    layer_heads = std::move(h), layer_kv_heads = std::move(kv), layer_hidden = std::move(ff);
  }
}

int64_t ModelConfig::parameter_count() const {
  const int64_t d = dim, v = vocab_size;
  int64_t total = 0;
  for (int l = 0; l < n_layers; ++l) {
    const int64_t h = ffn_dim(l), q = q_dim(l), kv = kv_dim(l);
    int64_t per_layer = d * q + 2 * d * kv + q * d;
    if (arch == Arch::Llama) {
      per_layer += 3 * d * h + 2 * d;
      if (qkv_bias) per_layer += q + 2 * kv;
    } else {
      per_layer += 2 * d * h + 4 * d + (q + 2 * kv) + d + h + d;
    }
    total += per_layer;
  }
  total += v * d + (arch == Arch::Llama ? d : 2 * d);
  if (!tied_embeddings) total += v * d;
  if (arch == Arch::GPT2) total += int64_t(max_seq_len) * d;
  return total;
}

std::string ModelConfig::summary() const {
  std::ostringstream os;
  os << arch_name(arch) << " dim " << dim << ", hidden " << hidden_dim << ", layers " << n_layers << ", heads "
     << n_heads << " (kv " << n_kv_heads << ", head_dim " << head_dim << "), vocab " << vocab_size << ", ctx "
     << max_seq_len << (tied_embeddings ? ", tied head" : "") << (qkv_bias ? ", qkv bias" : "");
  if (!uniform()) {
    os << ", per layer (heads/kv/ffn):";
    for (int l = 0; l < n_layers; ++l) os << (l ? " " : " ") << heads(l) << "/" << kv_heads(l) << "/" << ffn_dim(l);
  }
  return os.str();
}

}  // namespace shrink
