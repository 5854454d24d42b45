// GGUF <-> ModelFile: maps GGUF metadata (llama / qwen2 / gpt2 keys, the
// tokenizer.ggml.* vocabulary) and tensors to shrink's ModelConfig, tensors
// and Vocab, and back. Keys and tensor names follow ggml docs/gguf.md
// ("Standardized key-value pairs", "Standardized tensor names") and what
// llama.cpp's loader expects (key types: u32 counts, f32 epsilons).
//
// GGUF lists dims innermost first (ne[0] = contiguous); shrink shapes are
// outermost first, so a weight with ne = [in, out] becomes shape {out, in}.
// The row-major bytes are the same, so dense tensors map in place.
#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <map>
#include <tuple>

#include "core/error.h"
#include "io/gguf.h"
#include "io/model_file.h"

namespace shrink {

namespace {

// ------------------------------------------------------------------ metadata helpers

std::string where(const GgufFile& g, const std::string& key) { return g.path + ": " + key; }

// An integer key that llama.cpp also allows as a per-layer array; all entries must agree.
int64_t int_key(const GgufFile& g, const std::string& key, int64_t def, bool required) {
  const GgufValue* v = g.find(key);
  if (!v) {
    SHRINK_CHECK(!required, g.path, ": metadata key '", key, "' is missing");
    return def;
  }
  int64_t x = 0;
  if (v->type() == GgufType::Array) {
    const GgufArray& a = v->as_array(where(g, key));
    SHRINK_CHECK(!a.items.empty(), where(g, key), " is an empty array");
    x = a.items[0].as_int(where(g, key));
    for (const auto& it : a.items)
      SHRINK_CHECK(it.as_int(where(g, key)) == x, where(g, key), " varies per layer, which is not supported");
  } else {
    x = v->as_int(where(g, key));
  }
  SHRINK_CHECK(x >= 0 && x <= (int64_t{1} << 31) - 1, where(g, key), " = ", x, " is out of range");
  return x;
}

// A per-layer key as llama.cpp reads it (llama_model_loader::get_key_or_arr): a
// scalar for every layer, or an array of one value per layer (structurally
// pruned models). Empty when the key is absent.
std::vector<int> per_layer_key(const GgufFile& g, const std::string& key, int n_layers) {
  const GgufValue* v = g.find(key);
  if (!v) return {};
  if (v->type() != GgufType::Array) {
    const int64_t x = v->as_int(where(g, key));
    SHRINK_CHECK(x >= 0 && x <= (int64_t{1} << 31) - 1, where(g, key), " = ", x, " is out of range");
    return std::vector<int>(n_layers, int(x));
  }
  const GgufArray& a = v->as_array(where(g, key));
  SHRINK_CHECK(int64_t(a.items.size()) == n_layers, where(g, key), " has ", a.items.size(), " entries for ", n_layers,
               " layers");
  std::vector<int> out;
  for (const auto& it : a.items) {
    const int64_t x = it.as_int(where(g, key));
    SHRINK_CHECK(x > 0 && x <= (int64_t{1} << 31) - 1, where(g, key), " has an entry ", x, " out of range");
    out.push_back(int(x));
  }
  return out;
}

double float_key(const GgufFile& g, const std::string& key, double def, bool required) {
  const GgufValue* v = g.find(key);
  if (!v) {
    SHRINK_CHECK(!required, g.path, ": metadata key '", key, "' is missing");
    return def;
  }
  return v->as_float(where(g, key));
}

std::string string_key(const GgufFile& g, const std::string& key, const std::string& def) {
  const GgufValue* v = g.find(key);
  return v ? v->as_string(where(g, key)) : def;
}

// ------------------------------------------------------------------ architectures

struct ArchSpec {
  const char* gguf;
  Arch arch;
  bool qkv_bias;
  RopeStyle rope;
};
// qwen2 is a llama with q/k/v biases whose q/k rows are in NeoX (rotate-half) order.
constexpr ArchSpec kArchs[] = {
    {"llama", Arch::Llama, false, RopeStyle::Interleaved},
    {"qwen2", Arch::Llama, true, RopeStyle::Neox},
    {"gpt2", Arch::GPT2, false, RopeStyle::Interleaved},
};

const ArchSpec& find_arch(const GgufFile& g, const std::string& name) {
  for (const auto& a : kArchs)
    if (name == a.gguf) return a;
  fail(g.path, ": unsupported architecture '", name, "' (supported: llama, qwen2, gpt2)");
}

void read_rope(const GgufFile& g, const std::string& p, ModelConfig& c) {
  c.rope_theta = static_cast<float>(float_key(g, p + "rope.freq_base", 10000.0, false));
  const std::string type = string_key(g, p + "rope.scaling.type", "");
  if (type == "linear") {
    c.rope_scale = static_cast<float>(float_key(g, p + "rope.scaling.factor", 1.0, true));
  } else if (type.empty() || type == "none") {
    c.rope_scale = static_cast<float>(float_key(g, p + "rope.scale_linear", 1.0, false));  // pre-2024 key
  } else {
    fail(g.path, ": RoPE scaling type '", type, "' is not supported (supported: none, linear)");
  }
  const int64_t rot = int_key(g, p + "rope.dimension_count", c.head_dim, false);
  SHRINK_CHECK(rot == c.head_dim || c.head_dim == 0, g.path, ": rope.dimension_count ", rot,
               " differs from head_dim ", c.head_dim, " (partial rotary embeddings are not supported)");
}

ModelConfig read_config(const GgufFile& g, const ArchSpec& a) {
  const std::string p = std::string(a.gguf) + ".";
  ModelConfig c;
  c.arch = a.arch;
  c.qkv_bias = a.qkv_bias;
  c.rope_style = a.rope;
  c.name = string_key(g, "general.name", "");
  c.dim = static_cast<int>(int_key(g, p + "embedding_length", 0, true));
  c.n_layers = static_cast<int>(int_key(g, p + "block_count", 0, true));
  SHRINK_CHECK(c.n_layers > 0 && c.n_layers <= 4096, g.path, ": implausible block_count ", c.n_layers);
  std::vector<int> heads = per_layer_key(g, p + "attention.head_count", c.n_layers);
  SHRINK_CHECK(!heads.empty(), g.path, ": metadata key '", p, "attention.head_count' is missing");
  std::vector<int> kv = per_layer_key(g, p + "attention.head_count_kv", c.n_layers);
  std::vector<int> ffn = per_layer_key(g, p + "feed_forward_length", c.n_layers);
  if (kv.empty() || a.arch == Arch::GPT2) kv = heads;
  c.n_heads = heads[0], c.n_kv_heads = kv[0], c.hidden_dim = ffn.empty() ? 0 : ffn[0];
  const bool per_layer = !ffn.empty() && (heads != std::vector<int>(c.n_layers, heads[0]) ||
                                          kv != std::vector<int>(c.n_layers, kv[0]) ||
                                          ffn != std::vector<int>(c.n_layers, ffn[0]));
  if (per_layer) {
    SHRINK_CHECK(g.find(p + "attention.key_length"), g.path, ": per-layer head counts need ", p,
                 "attention.key_length (the head size)");
    c.set_layer_sizes(heads, kv, ffn);
  }
  c.max_seq_len = static_cast<int>(int_key(g, p + "context_length", 0, false));
  SHRINK_CHECK(c.n_heads > 0, g.path, ": ", p, "attention.head_count is 0");
  const int64_t even_split = c.dim % c.n_heads == 0 ? c.dim / c.n_heads : 0;  // else validate() reports it
  c.head_dim = static_cast<int>(int_key(g, p + "attention.key_length", even_split, false));
  if (a.arch == Arch::GPT2) {
    c.norm_eps = static_cast<float>(float_key(g, p + "attention.layer_norm_epsilon", 0, true));
    c.n_kv_heads = c.n_heads;
  } else {
    c.norm_eps = static_cast<float>(float_key(g, p + "attention.layer_norm_rms_epsilon", 0, true));
    read_rope(g, p, c);
  }
  return c;
}

// Fills what the tensors say: vocabulary size, tied head, and the FFN width when the key is absent.
void config_from_tensors(const GgufFile& g, ModelConfig& c) {
  const GgufTensorInfo* emb = g.find_tensor("token_embd.weight");
  SHRINK_CHECK(emb && emb->ne.size() == 2, g.path, ": tensor 'token_embd.weight' is missing or not 2-D");
  SHRINK_CHECK(emb->ne[1] <= (uint64_t{1} << 31), g.path, ": implausible vocabulary size ", emb->ne[1]);
  c.vocab_size = static_cast<int>(emb->ne[1]);
  c.tied_embeddings = g.find_tensor("output.weight") == nullptr;
  if (c.hidden_dim == 0) {
    const GgufTensorInfo* up = g.find_tensor("blk.0.ffn_up.weight");
    SHRINK_CHECK(up && up->ne.size() == 2 && up->ne[1] < (uint64_t{1} << 31), g.path,
                 ": feed_forward_length is missing and blk.0.ffn_up.weight gives no width");
    c.hidden_dim = static_cast<int>(up->ne[1]);
  }
}

// ------------------------------------------------------------------ tensors

constexpr const char* kSupportedTypes =
    "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL";

Tensor load_tensor(const GgufFile& g, const GgufTensorInfo& info) {
  DType dt{};
  const bool known = ggml_to_dtype(info.type, &dt);
  // Weights are float or a block type (every one shrink maps has a dequantizer); integer tensors are not weights,
  // except the index words and metadata of compressed N:M linears (model/sparse_weight.h).
  const auto ends_with = [&](const char* suffix) {
    const size_t n = std::strlen(suffix);
    return info.name.size() > n && info.name.compare(info.name.size() - n, n, suffix) == 0;
  };
  // ... and those of bitmask sparse linears (model/sparse_mask_weight.h).
  const bool nm_int = (dt == DType::I32 && (ends_with(".nm_idx") || ends_with(".nm_meta") || ends_with(".mask_meta"))) ||
                      (dt == DType::I16 && ends_with(".mask_bits"));
  SHRINK_CHECK(known && (dt == DType::F32 || dt == DType::F16 || dt == DType::BF16 || is_block_quantized(dt) || nm_int),
               g.path, ": tensor '", info.name, "' has unsupported type ", ggml_type_name(info.type),
               " (supported: ", kSupportedTypes, ")");
  std::vector<int64_t> shape(info.ne.rbegin(), info.ne.rend());  // GGUF innermost-first -> outermost-first
  uint8_t* p = g.tensor_data(info);
  // Block-quantized tensors stay in their blocks (the runtime multiplies by
  // them directly). An alignment below the element size (legal but unusual)
  // could leave a dense view misaligned: copy then.
  if (!is_block_quantized(dt) && reinterpret_cast<uintptr_t>(p) % dtype_traits(dt).block_bytes != 0) {
    Tensor t = Tensor::alloc(dt, shape);
    std::memcpy(t.data, p, info.nbytes);
    return t;
  }
  return Tensor::view(dt, std::move(shape), p, g.file);
}

// ------------------------------------------------------------------ tokenizer

int32_t token_id(const GgufFile& g, const std::string& key, int32_t def, size_t n_tokens) {
  const GgufValue* v = g.find(key);
  if (!v) return def;
  const int64_t id = v->as_int(where(g, key));
  // Converters write 0xFFFFFFFF for "none"; llama.cpp ignores out-of-range ids, and so do we.
  return id >= 0 && static_cast<uint64_t>(id) < n_tokens ? static_cast<int32_t>(id) : -1;
}

template <typename F>
void read_array(const GgufFile& g, const std::string& key, size_t expect, F&& each) {
  const GgufValue* v = g.find(key);
  if (!v) return;
  const GgufArray& a = v->as_array(where(g, key));
  SHRINK_CHECK(expect == 0 || a.items.size() == expect, where(g, key), " has ", a.items.size(),
               " entries but there are ", expect, " tokens");
  for (const auto& it : a.items) each(it);
}

Vocab read_vocab(const GgufFile& g) {
  Vocab v;
  v.model = string_key(g, "tokenizer.ggml.model", "");
  SHRINK_CHECK(!v.model.empty() && v.model != "no_vocab" && v.model != "none", g.path,
               ": the file has no tokenizer (tokenizer.ggml.model is ", v.model.empty() ? "missing" : v.model, ")");
  SHRINK_CHECK(g.find("tokenizer.ggml.tokens"), g.path, ": metadata key 'tokenizer.ggml.tokens' is missing");
  const std::string k = "tokenizer.ggml.";
  // Error prefixes built once: the arrays can hold hundreds of thousands of entries.
  const std::string w_tok = where(g, k + "tokens"), w_score = where(g, k + "scores"),
                    w_type = where(g, k + "token_type"), w_merge = where(g, k + "merges");
  read_array(g, k + "tokens", 0, [&](const GgufValue& x) { v.tokens.push_back(x.as_string(w_tok)); });
  const size_t n = v.tokens.size();
  SHRINK_CHECK(n > 0, g.path, ": tokenizer.ggml.tokens is empty");
  read_array(g, k + "scores", n,
             [&](const GgufValue& x) { v.scores.push_back(static_cast<float>(x.as_float(w_score))); });
  read_array(g, k + "token_type", n,
             [&](const GgufValue& x) { v.types.push_back(static_cast<int32_t>(x.as_int(w_type))); });
  read_array(g, k + "merges", 0, [&](const GgufValue& x) { v.merges.push_back(x.as_string(w_merge)); });
  const bool spm = v.model == "llama";  // llama.cpp's SPM defaults: <unk>=0, <s>=1, </s>=2, add BOS and a space
  v.unk_id = token_id(g, k + "unknown_token_id", spm ? 0 : -1, n);
  v.bos_id = token_id(g, k + "bos_token_id", spm ? 1 : -1, n);
  v.eos_id = token_id(g, k + "eos_token_id", spm ? 2 : -1, n);
  v.pad_id = token_id(g, k + "padding_token_id", -1, n);
  const GgufValue* add_bos = g.find(k + "add_bos_token");
  v.add_bos = add_bos ? add_bos->as_bool(where(g, k + "add_bos_token")) : spm;
  const GgufValue* add_space = g.find(k + "add_space_prefix");
  v.add_space_prefix = add_space ? add_space->as_bool(where(g, k + "add_space_prefix")) : spm;
  return v;
}

bool has_vocab(const GgufFile& g) {
  const std::string model = string_key(g, "tokenizer.ggml.model", "");
  return !model.empty() && model != "no_vocab" && model != "none";
}

}  // namespace

Vocab load_gguf_vocab(const std::string& path) { return read_vocab(read_gguf(path)); }

ModelFile load_gguf_model(const std::string& path) {
  const GgufFile g = read_gguf(path);
  const ArchSpec& arch = find_arch(g, g.get("general.architecture").as_string(where(g, "general.architecture")));
  ModelFile m;
  m.format = "gguf";
  m.path = path;
  m.config = read_config(g, arch);
  config_from_tensors(g, m.config);
  m.config.validate(path);
  for (const auto& info : g.tensors) m.tensors.emplace(info.name, load_tensor(g, info));
  check_model_tensors(m);
  if (has_vocab(g)) {
    Vocab v = read_vocab(g);  // a malformed vocabulary is a malformed file: let it throw
    try {
      m.tokenizer = make_tokenizer(std::move(v));
    } catch (const Error&) {
      m.tokenizer = nullptr;  // a tokenizer shrink cannot run yet does not make the weights unusable
    }
  }
  return m;
}

// ================================================================== writing

namespace {

// GGUF architecture name for a config: qwen2 is the llama variant with q/k/v biases.
const ArchSpec& arch_for(const ModelConfig& c) {
  if (c.arch == Arch::GPT2) return kArchs[2];
  return c.qkv_bias ? kArchs[1] : kArchs[0];
}

// Source row of destination row r: rows are permuted within each head of head_dim rows.
int64_t head_source_row(int64_t r, int head_dim, bool to_interleaved) {
  const int64_t h = r / head_dim, j = r % head_dim, half = head_dim / 2;
  const int64_t src = to_interleaved ? (j % 2 == 0 ? j / 2 : half + j / 2) : (j < half ? 2 * j : 2 * (j - half) + 1);
  return h * head_dim + src;
}

// Reorders the q/k rows (or bias entries) of every head between NeoX order
// (i, i+d/2 rotate together) and interleaved order (2i, 2i+1), so a model is
// written in the RoPE convention its GGUF architecture implies.
Tensor permute_heads(const Tensor& t, int n_heads, int head_dim, bool to_interleaved) {
  const int64_t rows = t.ndim() == 1 ? t.numel() : t.dim(0);
  SHRINK_CHECK(rows == int64_t(n_heads) * head_dim, "RoPE permutation: tensor has ", rows, " rows, expected ",
               int64_t(n_heads) * head_dim);
  const int64_t row_bytes = t.nbytes() / rows;
  Tensor out = Tensor::alloc(t.dtype, t.shape);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out.ptr<uint8_t>() + r * row_bytes,
                t.ptr<const uint8_t>() + head_source_row(r, head_dim, to_interleaved) * row_bytes,
                static_cast<size_t>(row_bytes));
  return out;
}

// The flat values of a bitmask sparse weight (rows of popcount(masks) values
// back to back, model/sparse_mask_weight.h) in the row order permute_heads gives its masks.
Tensor permute_mask_values(const Tensor& bits, const Tensor& vals, int n_heads, int head_dim, bool to_interleaved) {
  const int64_t rows = bits.dim(0), groups = bits.dim(1);
  SHRINK_CHECK(rows == int64_t(n_heads) * head_dim, "RoPE permutation: bitmask has ", rows, " rows, expected ",
               int64_t(n_heads) * head_dim);
  std::vector<int64_t> start(static_cast<size_t>(rows + 1), 0);
  const uint16_t* mk = bits.ptr<const uint16_t>();
  for (int64_t r = 0; r < rows; ++r) {
    start[r + 1] = start[r];
    for (int64_t g = 0; g < groups; ++g) start[r + 1] += std::popcount(mk[r * groups + g]);
  }
  SHRINK_CHECK(start.back() == vals.numel(), "RoPE permutation: bitmask marks ", start.back(), " values, tensor has ",
               vals.numel());
  Tensor out = Tensor::alloc(DType::F32, vals.shape);
  float* o = out.f32();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t src = head_source_row(r, head_dim, to_interleaved);
    o = std::copy(vals.ptr<const float>() + start[src], vals.ptr<const float>() + start[src + 1], o);
  }
  return out;
}

// llama.cpp's llama_ftype for the dtype holding most weight-matrix elements.
uint32_t file_type(const ModelFile& m) {
  std::map<DType, int64_t> count;
  for (const auto& [_, t] : m.tensors)
    if (t.ndim() >= 2) count[t.dtype] += t.numel();
  DType best = DType::F32;
  int64_t most = -1;
  for (const auto& [dt, n] : count)
    if (n > most) most = n, best = dt;
  switch (best) {
    case DType::F16: return 1;   // MOSTLY_F16
    case DType::Q4_0: return 2;  // MOSTLY_Q4_0
    case DType::Q4_1: return 3;  // MOSTLY_Q4_1
    case DType::Q8_0: return 7;  // MOSTLY_Q8_0
    case DType::Q5_0: return 8;  // MOSTLY_Q5_0
    case DType::Q5_1: return 9;  // MOSTLY_Q5_1
    case DType::Q2_K: return 10; // MOSTLY_Q2_K
    case DType::Q3_K: return 11; // MOSTLY_Q3_K_S
    case DType::Q4_K: return 14; // MOSTLY_Q4_K_S
    case DType::Q5_K: return 16; // MOSTLY_Q5_K_S
    case DType::Q6_K: return 18; // MOSTLY_Q6_K
    case DType::IQ4_NL: return 25; // MOSTLY_IQ4_NL
    case DType::BF16: return 32; // MOSTLY_BF16
    default: return 0;           // ALL_F32
  }
}

bool any_quantized(const ModelFile& m) {
  return std::any_of(m.tensors.begin(), m.tensors.end(),
                     [](const auto& e) { return is_block_quantized(e.second.dtype); });
}

void add_arch_kv(std::vector<GgufKV>& kv, const ModelConfig& c, const ArchSpec& a) {
  const std::string p = std::string(a.gguf) + ".";
  auto u32 = [](int64_t x) { return GgufValue(static_cast<uint32_t>(x)); };
  kv.push_back({p + "vocab_size", u32(c.vocab_size)});
  kv.push_back({p + "context_length", u32(c.max_seq_len)});
  kv.push_back({p + "embedding_length", u32(c.dim)});
  kv.push_back({p + "block_count", u32(c.n_layers)});
  // Per-layer sizes as llama.cpp stores them (hparams.n_head_arr / n_head_kv_arr / n_ff_arr):
  // one array entry per layer when the layers differ, a scalar otherwise.
  auto per_layer = [&](int (ModelConfig::*of)(int) const, int scalar) {
    if (c.uniform()) return u32(scalar);
    std::vector<GgufValue> items;
    for (int l = 0; l < c.n_layers; ++l) items.push_back(u32((c.*of)(l)));
    return gguf_array(GgufType::U32, std::move(items));
  };
  kv.push_back({p + "feed_forward_length", per_layer(&ModelConfig::ffn_dim, c.hidden_dim)});
  kv.push_back({p + "attention.head_count", per_layer(&ModelConfig::heads, c.n_heads)});
  if (c.head_dim * c.n_heads != c.dim || !c.uniform()) {  // llama.cpp assumes dim / n_heads otherwise
    kv.push_back({p + "attention.key_length", u32(c.head_dim)});
    kv.push_back({p + "attention.value_length", u32(c.head_dim)});
  }
  if (a.arch == Arch::GPT2) {
    kv.push_back({p + "attention.layer_norm_epsilon", GgufValue(c.norm_eps)});
    return;
  }
  kv.push_back({p + "attention.head_count_kv", per_layer(&ModelConfig::kv_heads, c.n_kv_heads)});
  kv.push_back({p + "attention.layer_norm_rms_epsilon", GgufValue(c.norm_eps)});
  kv.push_back({p + "rope.freq_base", GgufValue(c.rope_theta)});
  kv.push_back({p + "rope.dimension_count", u32(c.head_dim)});
  if (c.rope_scale != 1.0f) {
    kv.push_back({p + "rope.scaling.type", GgufValue("linear")});
    kv.push_back({p + "rope.scaling.factor", GgufValue(c.rope_scale)});
  }
}

// tokenizer.ggml.*; the token list is padded with unused "[PADn]" tokens up to
// the embedding's rows because llama.cpp requires the two to match.
void add_tokenizer_kv(std::vector<GgufKV>& kv, const ModelFile& m, const ArchSpec& a, const std::string& path) {
  const std::string k = "tokenizer.ggml.";
  if (!m.tokenizer) {
    kv.push_back({k + "model", GgufValue("no_vocab")});  // llama.cpp's marker for "no vocabulary"
    return;
  }
  Vocab v = m.tokenizer->vocab();
  SHRINK_CHECK(v.model == "llama" || v.model == "gpt2", path, ": cannot write tokenizer model '", v.model,
               "' to GGUF (supported: llama, gpt2)");
  const size_t n = static_cast<size_t>(m.config.vocab_size), have = v.tokens.size();
  SHRINK_CHECK(have <= n, path, ": tokenizer has ", have, " tokens but the model's vocabulary is ", n);
  v.types.resize(have, kTokenNormal);
  if (v.model == "llama") v.scores.resize(have, 0.0f);
  for (size_t i = have; i < n; ++i) {
    v.tokens.push_back("[PAD" + std::to_string(i) + "]");
    v.types.push_back(kTokenUnused);
    if (!v.scores.empty()) v.scores.push_back(0.0f);
  }
  kv.push_back({k + "model", GgufValue(v.model)});
  if (v.model == "gpt2" && a.arch == Arch::GPT2) kv.push_back({k + "pre", GgufValue("gpt-2")});
  if (v.model == "gpt2" && a.qkv_bias) kv.push_back({k + "pre", GgufValue("qwen2")});
  kv.push_back({k + "tokens", gguf_strings(v.tokens)});
  if (!v.scores.empty()) kv.push_back({k + "scores", gguf_f32s(v.scores)});
  kv.push_back({k + "token_type", gguf_i32s(v.types)});
  if (v.model == "gpt2") kv.push_back({k + "merges", gguf_strings(v.merges)});  // llama.cpp requires the key
  const std::pair<const char*, int32_t> ids[] = {
      {"bos_token_id", v.bos_id},
      {"eos_token_id", v.eos_id},
      {"unknown_token_id", v.unk_id},
      {"padding_token_id", v.pad_id}};
  for (const auto& [name, id] : ids)
    if (id >= 0) kv.push_back({k + name, GgufValue(static_cast<uint32_t>(id))});
  kv.push_back({k + "add_bos_token", GgufValue(v.add_bos)});
  kv.push_back({k + "add_space_prefix", GgufValue(v.add_space_prefix)});
}

// Sort key giving token_embd, position_embd, output_norm, output, other
// top-level tensors, then blocks in numeric layer order (blk.2 before blk.10).
std::tuple<int, int64_t, int, std::string> order_key(const std::string& name) {
  static const std::vector<std::string> top = {"token_embd.weight", "position_embd.weight", "output_norm.weight",
                                               "output_norm.bias", "output.weight", "output.bias"};
  static const std::vector<std::string> block = {
      "attn_norm.weight", "attn_norm.bias", "attn_q.weight",  "attn_q.bias",      "attn_k.weight",
      "attn_k.bias",      "attn_v.weight",  "attn_v.bias",    "attn_qkv.weight",  "attn_qkv.bias",
      "attn_output.weight", "attn_output.bias", "ffn_norm.weight", "ffn_norm.bias", "ffn_gate.weight",
      "ffn_up.weight",    "ffn_up.bias",    "ffn_down.weight", "ffn_down.bias"};
  auto slot = [](const std::vector<std::string>& list, const std::string& s) {
    return static_cast<int>(std::find(list.begin(), list.end(), s) - list.begin());
  };
  if (name.rfind("blk.", 0) == 0) {
    int64_t layer = 0;
    const char* b = name.data() + 4;
    const auto [end, ec] = std::from_chars(b, name.data() + name.size(), layer);
    if (ec == std::errc() && end != b && *end == '.') {
      const std::string rest(end + 1);
      return {1, layer, slot(block, rest), rest};
    }
  }
  return {0, 0, slot(top, name), name};
}

std::vector<std::string> tensor_order(const ModelFile& m) {
  std::vector<std::string> names;
  for (const auto& [name, _] : m.tensors) names.push_back(name);
  std::stable_sort(names.begin(), names.end(),
                   [](const std::string& a, const std::string& b) { return order_key(a) < order_key(b); });
  return names;
}

// q/k weights (and biases) whose RoPE order differs from what the GGUF arch implies, permuted.
std::map<std::string, Tensor> rope_fixups(const ModelFile& m, const ArchSpec& a) {
  std::map<std::string, Tensor> out;
  const ModelConfig& c = m.config;
  if (c.arch != Arch::Llama || c.rope_style == a.rope) return out;
  const bool to_interleaved = a.rope == RopeStyle::Interleaved;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const auto& [suffix, heads] : {std::pair{"attn_q.", c.heads(l)}, std::pair{"attn_k.", c.kv_heads(l)}}) {
      // Permuting W's rows = permuting U's rows, or the rows of N:M values and their indices.
      for (const char* kind : {"weight", "bias", "weight.lr_u", "weight.nm_val", "weight.nm_idx", "weight.mask_bits"})
        if (const Tensor* t = m.find(p + suffix + kind))
          out[p + suffix + kind] = permute_heads(*t, heads, c.head_dim, to_interleaved);
      // Bitmask values are one flat run: moved row by row after the masks' popcounts.
      const std::string bits = p + suffix + "weight.mask_bits", vals = p + suffix + "weight.mask_val";
      if (m.find(bits)) out[vals] = permute_mask_values(m.get(bits), m.get(vals), heads, c.head_dim, to_interleaved);
    }
  }
  return out;
}

}  // namespace

void save_gguf_model(const ModelFile& in, const std::string& path) {
  SHRINK_CHECK(in.packed.empty(), path, ": pack-quantized (group format) linears such as ", in.packed.begin()->first,
               " have no GGUF form; write a Hugging Face directory instead");
  ModelFile m = in;  // shallow: tensors share storage
  m.config.validate(path);
  check_model_tensors(m);
  const ArchSpec& a = arch_for(m.config);
  std::vector<GgufKV> kv = {
      {"general.architecture", GgufValue(a.gguf)},
      {"general.alignment", GgufValue(uint32_t{32})},
      {"general.file_type", GgufValue(file_type(m))},
  };
  if (!m.config.name.empty()) kv.push_back({"general.name", GgufValue(m.config.name)});
  if (any_quantized(m)) kv.push_back({"general.quantization_version", GgufValue(uint32_t{2})});  // ggml's QK format
  add_arch_kv(kv, m.config, a);
  add_tokenizer_kv(kv, m, a, path);
  // Low-rank linears (BASE.weight.lr_u / .lr_v, docs/lowrank.md) are shrink's own
  // convention: count them in a key so that a reader can tell why BASE.weight is absent.
  const auto lowrank = std::count_if(m.tensors.begin(), m.tensors.end(), [](const auto& e) {
    return e.first.size() > 5 && e.first.compare(e.first.size() - 5, 5, ".lr_u") == 0;
  });
  if (lowrank > 0) kv.push_back({"shrink.lowrank.count", GgufValue(static_cast<uint32_t>(lowrank))});
  // Compressed N:M linears (BASE.weight.nm_val / .nm_idx / .nm_meta) and bitmask ones
  // (BASE.weight.mask_bits / .mask_val / .mask_meta), docs/pruning.md, likewise.
  const auto has_suffix = [](const std::string& s, const std::string& x) {
    return s.size() > x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  const auto sparse = std::count_if(m.tensors.begin(), m.tensors.end(), [&](const auto& e) {
    return has_suffix(e.first, ".nm_val") || has_suffix(e.first, ".mask_bits");
  });
  if (sparse > 0) kv.push_back({"shrink.sparse.count", GgufValue(static_cast<uint32_t>(sparse))});

  const std::map<std::string, Tensor> fixed = rope_fixups(m, a);
  std::vector<GgufTensorOut> out;
  for (const std::string& name : tensor_order(m)) {
    auto f = fixed.find(name);
    const Tensor& t = f != fixed.end() ? f->second : m.tensors.at(name);
    GgufTensorOut o;
    o.name = name;
    SHRINK_CHECK(dtype_to_ggml(t.dtype, &o.type), path, ": tensor '", name, "' has dtype ", dtype_name(t.dtype),
                 ", which GGUF cannot store");
    o.ne.assign(t.shape.rbegin(), t.shape.rend());  // outermost-first -> GGUF innermost-first
    if (o.ne.empty()) o.ne.push_back(1);
    o.data = t.data;
    out.push_back(std::move(o));
  }
  write_gguf(path, kv, out);
}

}  // namespace shrink
