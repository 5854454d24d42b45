// llama2.c v0 checkpoints (Karpathy's run.c format):
//   header: int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//           (vocab_size < 0 means an unshared classifier follows at the end)
//   f32 token_embedding[vocab][dim], rms_att[L][dim], wq[L][dim][dim], wk[L][kv_dim][dim],
//   wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim], w1[L][hidden][dim], w2[L][dim][hidden],
//   w3[L][hidden][dim], rms_final[dim], freq_cis_real[seq][hd/2], freq_cis_imag[seq][hd/2],
//   (wcls[vocab][dim] if unshared)
// Weights are mapped in place (no copy); RoPE is on interleaved pairs.
#include <string>

#include "core/error.h"
#include "core/file.h"
#include "io/model_file.h"

namespace shrink {

ModelFile load_llama2c(const std::string& path) {
  auto file = MappedFile::open(path);
  ByteReader r(file->data(), file->size(), path);
  int32_t h[7];
  for (auto& v : h) v = r.read<int32_t>();
  ModelFile m;
  m.format = "llama2c";
  m.path = path;
  ModelConfig& c = m.config;
  c.arch = Arch::Llama;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.max_seq_len = h[6];
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  SHRINK_CHECK(c.n_kv_heads > 0 && c.max_seq_len > 0, path, ": bad llama2.c header (n_kv_heads ", c.n_kv_heads,
               ", seq_len ", c.max_seq_len, ")");
  c.validate(path);

  const int64_t L = c.n_layers, d = c.dim, hd = c.hidden_dim, kv = c.kv_dim(), V = c.vocab_size;
  const int64_t expected = 28 + 4 * (V * d + L * (2 * d + 2 * d * d + 2 * kv * d + 3 * d * hd) + d +
                                     int64_t(c.max_seq_len) * c.head_dim + (c.tied_embeddings ? 0 : V * d));
  SHRINK_CHECK(static_cast<int64_t>(file->size()) == expected, path, ": file is ", file->size(),
               " bytes but its header (", c.summary(), ") implies ", expected, " — truncated or not a llama2.c v0 file");

  auto take = [&](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    void* p = const_cast<uint8_t*>(r.take(static_cast<uint64_t>(n) * 4, "weights"));
    return Tensor::view(DType::F32, std::move(shape), p, file);
  };
  // Per-layer tensors are stored layer-major within each kind; split them.
  auto take_layers = [&](const std::string& suffix, std::vector<int64_t> shape) {
    for (int64_t l = 0; l < L; ++l) m.tensors["blk." + std::to_string(l) + "." + suffix] = take(shape);
  };
  m.tensors["token_embd.weight"] = take({V, d});
  take_layers("attn_norm.weight", {d});
  take_layers("attn_q.weight", {d, d});
  take_layers("attn_k.weight", {kv, d});
  take_layers("attn_v.weight", {kv, d});
  take_layers("attn_output.weight", {d, d});
  take_layers("ffn_norm.weight", {d});
  take_layers("ffn_gate.weight", {hd, d});
  take_layers("ffn_down.weight", {d, hd});
  take_layers("ffn_up.weight", {hd, d});
  m.tensors["output_norm.weight"] = take({d});
  r.take(static_cast<uint64_t>(c.max_seq_len) * c.head_dim * 4, "freq_cis");  // unused RoPE tables
  if (!c.tied_embeddings) m.tensors["output.weight"] = take({V, d});
  return m;
}

}  // namespace shrink
