#include "model/random_init.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"

namespace shrink {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

Tensor random_tensor(std::vector<int64_t> shape, DType dtype, float stddev, uint64_t seed) {
  Tensor t = Tensor::alloc(dtype, std::move(shape));
  const int64_t n = t.numel();
  const float a = stddev * std::sqrt(3.0f);  // U(-a, a) has this std
  constexpr int64_t kChunk = 1 << 16;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t len = std::min(kChunk, n - c0);
    std::vector<float> buf(len);
    for (int64_t i = 0; i < len; ++i) {
      const uint64_t r = splitmix64(seed ^ splitmix64(uint64_t(c0 + i)));
      buf[i] = a * (float(r >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
    convert_from_f32(dtype, buf.data(), static_cast<char*>(t.data) + dtype_bytes(dtype, c0), len);
  }
  return t;
}

Tensor filled(int64_t n, float v) {
  Tensor t = Tensor::alloc(DType::F32, {n});
  for (int64_t i = 0; i < n; ++i) t.f32()[i] = v;
  return t;
}

Vocab synthetic_vocab(int size) {
  Vocab v;
  v.model = "llama";
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  auto add = [&](std::string s, int32_t type) {
    v.tokens.push_back(std::move(s));
    v.scores.push_back(-float(v.tokens.size()));
    v.types.push_back(type);
  };
  add("<unk>", kTokenUnknown);
  add("<s>", kTokenControl);
  add("</s>", kTokenControl);
  for (int b = 0; b < 256 && int(v.tokens.size()) < size; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, kTokenByte);
  }
  for (char c = 'a'; c <= 'z' && int(v.tokens.size()) < size; ++c) add(std::string("\xe2\x96\x81") + c, kTokenNormal);
  for (char c = 'a'; c <= 'z' && int(v.tokens.size()) < size; ++c) add(std::string(1, c), kTokenNormal);
  while (int(v.tokens.size()) < size) add("<pad" + std::to_string(v.tokens.size()) + ">", kTokenUnused);
  return v;
}

}  // namespace

std::vector<std::string> preset_names() { return {"llama-500m", "tinyllama-1.1b", "gpt2-124m", "tiny"}; }

ModelConfig preset_config(const std::string& name) {
  ModelConfig c;
  c.name = name;
  if (name == "llama-500m") {
    c.dim = 1536, c.hidden_dim = 4096, c.n_layers = 16, c.n_heads = 12, c.n_kv_heads = 12, c.vocab_size = 32000;
    c.max_seq_len = 2048;
  } else if (name == "tinyllama-1.1b") {
    c.dim = 2048, c.hidden_dim = 5632, c.n_layers = 22, c.n_heads = 32, c.n_kv_heads = 4, c.vocab_size = 32000;
    c.max_seq_len = 2048;
  } else if (name == "gpt2-124m") {
    c.arch = Arch::GPT2;
    c.dim = 768, c.hidden_dim = 3072, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12, c.vocab_size = 50257;
    c.max_seq_len = 1024, c.tied_embeddings = true;
  } else if (name == "tiny") {
    c.dim = 64, c.hidden_dim = 172, c.n_layers = 2, c.n_heads = 8, c.n_kv_heads = 4, c.vocab_size = 512;
    c.max_seq_len = 256;
  } else {
    std::string list;
    for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
    fail("unknown preset '", name, "' (known: ", list, ")");
  }
  c.validate("preset " + name);
  return c;
}

ModelConfig config_from_json_file(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": invalid JSON (", e.what(), ")");
  }
  ModelConfig c;
  auto get = [&](std::initializer_list<const char*> keys, auto def) {
    for (const char* k : keys)
      if (j.contains(k) && !j[k].is_null()) return j[k].get<decltype(def)>();
    return def;
  };
  try {
    c.arch = parse_arch(get({"arch", "model_type"}, std::string("llama")));
    c.dim = get({"dim", "hidden_size", "n_embd"}, 0);
    c.hidden_dim = get({"hidden_dim", "intermediate_size", "n_inner"}, c.arch == Arch::GPT2 ? 4 * c.dim : 0);
    c.n_layers = get({"n_layers", "num_hidden_layers", "n_layer"}, 0);
    c.n_heads = get({"n_heads", "num_attention_heads", "n_head"}, 0);
    c.n_kv_heads = get({"n_kv_heads", "num_key_value_heads"}, c.n_heads);
    c.vocab_size = get({"vocab_size"}, 0);
    c.max_seq_len = get({"max_seq_len", "max_position_embeddings", "n_positions"}, 2048);
    c.norm_eps = get({"norm_eps", "rms_norm_eps", "layer_norm_epsilon"}, 1e-5f);
    c.rope_theta = get({"rope_theta"}, 10000.0f);
    c.tied_embeddings = get({"tied_embeddings", "tie_word_embeddings"}, c.arch == Arch::GPT2);
    c.qkv_bias = get({"qkv_bias"}, false);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": bad config value (", e.what(), ")");
  }
  c.validate(path);
  return c;
}

ModelFile random_model(const ModelConfig& c, DType dtype, uint64_t seed) {
  ModelFile m;
  m.config = c;
  m.format = "init";
  m.path = "init:" + (c.name.empty() ? std::string("custom") : c.name);
  const int64_t d = c.dim, h = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim(), V = c.vocab_size;
  const float out_std = 0.02f / std::sqrt(2.0f * c.n_layers);
  uint64_t s = seed;
  auto mat = [&](std::vector<int64_t> shape, float std_) { return random_tensor(std::move(shape), dtype, std_, ++s); };
  const bool gpt2 = c.arch == Arch::GPT2;
  m.tensors["token_embd.weight"] = mat({V, d}, 0.02f);
  if (gpt2) m.tensors["position_embd.weight"] = random_tensor({c.max_seq_len, d}, DType::F32, 0.01f, ++s);
  m.tensors["output_norm.weight"] = filled(d, 1.0f);
  if (gpt2) m.tensors["output_norm.bias"] = filled(d, 0.0f);
  if (!c.tied_embeddings) m.tensors["output.weight"] = mat({V, d}, 0.02f);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    m.tensors[p + "attn_norm.weight"] = filled(d, 1.0f);
    m.tensors[p + "ffn_norm.weight"] = filled(d, 1.0f);
    m.tensors[p + "attn_output.weight"] = mat({d, q}, out_std);
    m.tensors[p + "ffn_up.weight"] = mat({h, d}, 0.02f);
    m.tensors[p + "ffn_down.weight"] = mat({d, h}, out_std);
    if (gpt2) {
      m.tensors[p + "attn_qkv.weight"] = mat({q + 2 * kv, d}, 0.02f);
      m.tensors[p + "attn_qkv.bias"] = filled(q + 2 * kv, 0.0f);
      for (auto n : {"attn_norm.bias", "ffn_norm.bias", "attn_output.bias", "ffn_down.bias"}) m.tensors[p + n] = filled(d, 0.0f);
      m.tensors[p + "ffn_up.bias"] = filled(h, 0.0f);
    } else {
      m.tensors[p + "attn_q.weight"] = mat({q, d}, 0.02f);
      m.tensors[p + "attn_k.weight"] = mat({kv, d}, 0.02f);
      m.tensors[p + "attn_v.weight"] = mat({kv, d}, 0.02f);
      m.tensors[p + "ffn_gate.weight"] = mat({h, d}, 0.02f);
      if (c.qkv_bias)
        for (auto [n, len] : {std::pair{"attn_q.bias", q}, {"attn_k.bias", kv}, {"attn_v.bias", kv}})
          m.tensors[p + n] = filled(len, 0.0f);
    }
  }
  if (!gpt2) m.tokenizer = make_tokenizer(synthetic_vocab(c.vocab_size));
  return m;
}

}  // namespace shrink
