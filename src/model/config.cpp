#include "model/config.h"

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
  SHRINK_CHECK(n_layers <= 4096 && dim <= (1 << 20) && hidden_dim <= (1 << 22) && vocab_size <= (1 << 24),
               source, ": implausible model shape");
  SHRINK_CHECK(max_seq_len >= 0 && norm_eps > 0 && rope_theta > 0 && rope_scale > 0, source,
               ": invalid seq_len / eps / rope settings");
}

int64_t ModelConfig::parameter_count() const {
  const int64_t d = dim, h = hidden_dim, v = vocab_size;
  int64_t per_layer = d * q_dim() + 2 * d * kv_dim() + q_dim() * d;
  if (arch == Arch::Llama) {
    per_layer += 3 * d * h + 2 * d;
    if (qkv_bias) per_layer += q_dim() + 2 * kv_dim();
  } else {
    per_layer += 2 * d * h + 4 * d + (q_dim() + 2 * kv_dim()) + d + h + d;
  }
  int64_t total = n_layers * per_layer + v * d + (arch == Arch::Llama ? d : 2 * d);
  if (!tied_embeddings) total += v * d;
  if (arch == Arch::GPT2) total += int64_t(max_seq_len) * d;
  return total;
}

std::string ModelConfig::summary() const {
  std::ostringstream os;
  os << arch_name(arch) << " dim " << dim << ", hidden " << hidden_dim << ", layers " << n_layers << ", heads "
     << n_heads << " (kv " << n_kv_heads << ", head_dim " << head_dim << "), vocab " << vocab_size << ", ctx "
     << max_seq_len << (tied_embeddings ? ", tied head" : "") << (qkv_bias ? ", qkv bias" : "");
  return os.str();
}

}  // namespace shrink
