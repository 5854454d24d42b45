// Hugging Face model directories (config.json + safetensors) <-> ModelFile.
//
// Supported families: llama / mistral (LlamaForCausalLM tensors), qwen2 (llama
// plus q/k/v biases) and gpt2. Two layout conventions differ from the canonical
// (GGUF) one and are converted here, both with a copy of the affected tensors:
//   - Llama/Qwen2 q_proj/k_proj rows (and q/k biases) are in rotate-half order;
//     the ModelFile holds interleaved pairs (RopeStyle::Interleaved).
//   - GPT-2 Conv1D weights are stored {in, out}; the ModelFile holds {out, in}.
// Llama-family linears may also be compressed-tensors pack-quantized or
// int-quantized W8A8 (config.json quantization_config; layouts in
// compressed_tensors.h): their tensors follow the names of the weights they
// replace or accompany, and pack-quantized zero points are unpacked.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/file.h"
#include "io/compressed_tensors.h"
#include "io/hf_config.h"
#include "io/model_file.h"
#include "io/safetensors.h"

namespace shrink {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------- layouts

namespace {

// Moves whole rows within each head between interleaved order (row 2i+j) and
// HF's rotate-half order (row j*half+i), the inverse of HF's
// view(heads, hd/2, 2, cols).transpose(1, 2) when to_hf is false.
Tensor permute_rows(const Tensor& t, int n_heads, bool to_hf) {
  SHRINK_CHECK(!is_block_quantized(t.dtype), "q/k permutation needs a dense tensor, got ", dtype_name(t.dtype));
  SHRINK_CHECK(t.ndim() >= 1 && n_heads > 0 && t.shape[0] % (2 * int64_t(n_heads)) == 0, "cannot split ",
               shape_str(t.shape), " into ", n_heads, " heads of an even number of rows");
  Tensor out = Tensor::alloc(t.dtype, t.shape);
  const int64_t rows = t.shape[0];
  if (rows == 0 || t.nbytes() == 0) return out;
  const int64_t hd = rows / n_heads, half = hd / 2;
  const size_t row_bytes = static_cast<size_t>(t.nbytes() / rows);
  const auto* src = static_cast<const uint8_t*>(t.data);
  auto* dst = static_cast<uint8_t*>(out.data);
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t inter = h * hd + 2 * i + j, hf = h * hd + j * half + i;
        const int64_t from = to_hf ? inter : hf, to = to_hf ? hf : inter;
        std::memcpy(dst + to * row_bytes, src + from * row_bytes, row_bytes);
      }
  return out;
}

template <typename T>
void transpose_typed(const T* in, T* out, int64_t rows, int64_t cols) {
  constexpr int64_t B = 32;  // tiles keep both sides cache-friendly
  for (int64_t r0 = 0; r0 < rows; r0 += B)
    for (int64_t c0 = 0; c0 < cols; c0 += B)
      for (int64_t r = r0; r < std::min(rows, r0 + B); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + B); ++c) out[c * rows + r] = in[r * cols + c];
}

}  // namespace

Tensor hf_permute_qk(const Tensor& interleaved, int n_heads) { return permute_rows(interleaved, n_heads, true); }
Tensor hf_unpermute_qk(const Tensor& hf, int n_heads) { return permute_rows(hf, n_heads, false); }

Tensor transpose_2d(const Tensor& t) {
  SHRINK_CHECK(t.ndim() == 2 && !is_block_quantized(t.dtype), "transpose needs a dense 2-D tensor, got ",
               dtype_name(t.dtype), " ", shape_str(t.shape));
  const int64_t rows = t.shape[0], cols = t.shape[1];
  Tensor out = Tensor::alloc(t.dtype, {cols, rows});
  if (out.nbytes() == 0) return out;
  switch (dtype_bytes(t.dtype, 1)) {
    case 1:
      transpose_typed(t.ptr<uint8_t>(), out.ptr<uint8_t>(), rows, cols);
      break;
    case 2:
      transpose_typed(t.ptr<uint16_t>(), out.ptr<uint16_t>(), rows, cols);
      break;
    case 4:
      transpose_typed(t.ptr<uint32_t>(), out.ptr<uint32_t>(), rows, cols);
      break;
    case 8:
      transpose_typed(t.ptr<uint64_t>(), out.ptr<uint64_t>(), rows, cols);
      break;
    default:
      fail("transpose: unsupported element size");
  }
  return out;
}

namespace {

// ---------------------------------------------------------------- tensor names

struct NamePair {
  const char* hf;
  const char* canon;
};

// HF names after stripping the model prefix ("model." / "transformer.").
const std::vector<NamePair> kLlamaGlobal = {{"embed_tokens.weight", "token_embd.weight"},
                                            {"norm.weight", "output_norm.weight"},
                                            {"lm_head.weight", "output.weight"}};
const std::vector<NamePair> kLlamaLayer = {
    {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.o_proj.weight", "attn_output.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"}};
const std::vector<NamePair> kQkvBias = {{"self_attn.q_proj.bias", "attn_q.bias"},
                                        {"self_attn.k_proj.bias", "attn_k.bias"},
                                        {"self_attn.v_proj.bias", "attn_v.bias"}};
const std::vector<NamePair> kGpt2Global = {{"wte.weight", "token_embd.weight"},
                                           {"wpe.weight", "position_embd.weight"},
                                           {"ln_f.weight", "output_norm.weight"},
                                           {"ln_f.bias", "output_norm.bias"},
                                           {"lm_head.weight", "output.weight"}};
const std::vector<NamePair> kGpt2Layer = {
    {"ln_1.weight", "attn_norm.weight"},          {"ln_1.bias", "attn_norm.bias"},
    {"attn.c_attn.weight", "attn_qkv.weight"},    {"attn.c_attn.bias", "attn_qkv.bias"},
    {"attn.c_proj.weight", "attn_output.weight"}, {"attn.c_proj.bias", "attn_output.bias"},
    {"ln_2.weight", "ffn_norm.weight"},           {"ln_2.bias", "ffn_norm.bias"},
    {"mlp.c_fc.weight", "ffn_up.weight"},         {"mlp.c_fc.bias", "ffn_up.bias"},
    {"mlp.c_proj.weight", "ffn_down.weight"},     {"mlp.c_proj.bias", "ffn_down.bias"}};
// Conv1D weights (stored {in, out}) among the canonical GPT-2 layer names.
const std::vector<std::string> kGpt2Conv1D = {"attn_qkv.weight", "attn_output.weight", "ffn_up.weight",
                                              "ffn_down.weight"};

struct Scheme {
  std::string model_prefix;  // on every name but lm_head.weight
  std::string layer_prefix;  // before the layer number, after model_prefix
  std::vector<NamePair> global, layer;
  std::vector<std::string> skip_layer;  // non-weight buffers some checkpoints carry
};

Scheme scheme_for(Arch arch, bool qkv_bias) {
  if (arch == Arch::GPT2) return {"transformer.", "h.", kGpt2Global, kGpt2Layer, {"attn.bias", "attn.masked_bias"}};
  Scheme s{"model.", "layers.", kLlamaGlobal, kLlamaLayer, {"self_attn.rotary_emb.inv_freq"}};
  if (qkv_bias) s.layer.insert(s.layer.end(), kQkvBias.begin(), kQkvBias.end());
  return s;
}

// HF name -> canonical name; "" for a known buffer to skip; nullopt when unknown.
std::optional<std::string> to_canonical(std::string name, const Scheme& s, int n_layers) {
  if (name.rfind(s.model_prefix, 0) == 0) name = name.substr(s.model_prefix.size());
  for (const auto& p : s.global)
    if (name == p.hf) return std::string(p.canon);
  if (name.rfind(s.layer_prefix, 0) != 0) return std::nullopt;
  const char* num = name.c_str() + s.layer_prefix.size();
  if (!std::isdigit(static_cast<unsigned char>(num[0]))) return std::nullopt;  // strtol would take "+1", " 1"
  char* end = nullptr;
  const long layer = std::strtol(num, &end, 10);
  if (end == num || *end != '.' || layer < 0 || layer >= n_layers || (num[0] == '0' && end - num > 1))
    return std::nullopt;
  const std::string rest = end + 1;
  for (const auto& skip : s.skip_layer)
    if (rest == skip) return std::string();
  for (const auto& p : s.layer)
    if (rest == p.hf) return "blk." + std::to_string(layer) + "." + p.canon;
  return std::nullopt;
}

// Canonical name -> HF name; nullopt when the canonical name has no HF place.
std::optional<std::string> to_hf(const std::string& canon, const Scheme& s) {
  for (const auto& p : s.global)
    if (canon == p.canon) return canon == "output.weight" ? std::string(p.hf) : s.model_prefix + p.hf;
  if (canon.rfind("blk.", 0) != 0) return std::nullopt;
  const size_t dot = canon.find('.', 4);
  if (dot == std::string::npos) return std::nullopt;
  const std::string rest = canon.substr(dot + 1);
  for (const auto& p : s.layer)
    if (rest == p.canon) return s.model_prefix + s.layer_prefix + canon.substr(4, dot - 4) + "." + p.hf;
  return std::nullopt;
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// The two mappings for pack-quantized tensors too: "<linear>.weight_packed"
// etc. follow the name of "<linear>.weight" (io/compressed_tensors.h).
std::optional<std::string> to_canonical_any(const std::string& name, const Scheme& s, int n_layers) {
  const auto packed = split_packed_name(name);
  if (!packed) return to_canonical(name, s, n_layers);
  const auto canon = to_canonical(packed->first + ".weight", s, n_layers);
  if (!canon || canon->size() < 7 || canon->compare(canon->size() - 7, 7, ".weight") != 0) return std::nullopt;
  return canon->substr(0, canon->size() - 6) + packed->second;
}

std::optional<std::string> to_hf_any(const std::string& canon, const Scheme& s) {
  const auto packed = split_packed_name(canon);
  if (!packed) return to_hf(canon, s);
  const auto hf = to_hf(packed->first + ".weight", s);
  if (!hf) return std::nullopt;
  return hf->substr(0, hf->size() - 6) + packed->second;
}

// The HF module ("model.layers.0.self_attn.q_proj") of a canonical linear base ("blk.0.attn_q").
std::string hf_module(const std::string& base, const Scheme& s) {
  const auto hf = to_hf(base + ".weight", s);
  SHRINK_CHECK(hf.has_value(), "internal: no HF name for linear '", base, "'");
  return hf->substr(0, hf->size() - 7);
}

// "output" and the block Linears ("blk.0.attn_q", ...): the bases a quantized weight may have.
bool is_linear_base(const std::string& base) {
  static const std::vector<std::string> kLinear = {"attn_q",      "attn_k",   "attn_v", "attn_qkv",
                                                   "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  if (base == "output") return true;
  const size_t dot = base.find('.', 4);
  return base.rfind("blk.", 0) == 0 && dot != std::string::npos &&
         std::count(kLinear.begin(), kLinear.end(), base.substr(dot + 1));
}

std::string join_some(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 8; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 8) s += " (and " + std::to_string(names.size() - 8) + " more)";
  return s;
}

}  // namespace

// ---------------------------------------------------------------- load

namespace {

// Renames the tensors; every tensor must have a canonical name or be a known buffer.
void map_tensors(ModelFile& m, SafetensorsData& st) {
  const ModelConfig& c = m.config;
  const Scheme s = scheme_for(c.arch, c.qkv_bias);
  std::vector<std::string> unknown;
  for (auto& [name, t] : st.tensors) {
    const auto canon = to_canonical_any(name, s, c.n_layers);
    if (!canon) {
      unknown.push_back(name);
      continue;
    }
    if (canon->empty()) continue;
    // I8 weights are int-quantized codes (import_quantized checks they are a W8A8 linear's).
    const bool codes = t.dtype == DType::I8 && canon->size() > 7 && canon->compare(canon->size() - 7, 7, ".weight") == 0;
    SHRINK_CHECK(is_float(t.dtype) || codes || split_packed_name(*canon), m.path, ": tensor '", name, "' has dtype ",
                 safetensors_dtype_name(t.dtype), "; weights must be F32, F16 or BF16 (or int-quantized I8)");
    SHRINK_CHECK(m.tensors.emplace(*canon, std::move(t)).second, m.path, ": tensor '", *canon,
                 "' appears under two names");
  }
  SHRINK_CHECK(unknown.empty(), m.path, ": unrecognised tensors for ", arch_name(c.arch),
               (c.qkv_bias ? " (qwen2)" : ""), ": ", join_some(unknown));
}

void unpermute_qk(ModelFile& m) {
  const ModelConfig& c = m.config;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const int hq = c.heads(l), hk = c.kv_heads(l);  // per layer: a structurally pruned model may vary
    const std::pair<std::string, int> qk[] = {{p + "attn_q.weight", hq},
                                              {p + "attn_k.weight", hk},
                                              {p + "attn_q.bias", hq},
                                              {p + "attn_k.bias", hk},
                                              {p + "attn_q.weight_packed", hq},
                                              {p + "attn_k.weight_packed", hk},
                                              {p + "attn_q.weight_scale", hq},
                                              {p + "attn_k.weight_scale", hk},
                                              {p + "attn_q.weight_zero_point", hq},
                                              {p + "attn_k.weight_zero_point", hk}};
    for (const auto& [name, heads] : qk) {
      auto it = m.tensors.find(name);
      if (it == m.tensors.end()) continue;  // load_model reports missing tensors
      Tensor& t = it->second;
      if (t.numel() == 1 && split_packed_name(name)) continue;  // a per-tensor scale or zero point
      SHRINK_CHECK(t.ndim() >= 1 && t.shape[0] == int64_t(heads) * c.head_dim, m.path, ": tensor '", name,
                   "' has shape ", shape_str(t.shape), " but ", heads, " heads of ", c.head_dim, " need ",
                   int64_t(heads) * c.head_dim, " rows");
      t = hf_unpermute_qk(t, heads);
    }
  }
}

void transpose_conv1d(ModelFile& m) {
  for (int l = 0; l < m.config.n_layers; ++l)
    for (const auto& n : kGpt2Conv1D) {
      auto it = m.tensors.find("blk." + std::to_string(l) + "." + n);
      if (it == m.tensors.end()) continue;
      SHRINK_CHECK(it->second.ndim() == 2, m.path, ": tensor '", it->first, "' has shape ", shape_str(it->second.shape),
                   ", expected 2-D");
      it->second = transpose_2d(it->second);
    }
}

// The quantized linears of m by kind: base -> HF module, for those with
// weight_packed (pack-quantized) and those with an I8 weight (int-quantized).
struct QuantizedModules {
  std::map<std::string, std::string> packed, int8;
  bool empty() const { return packed.empty() && int8.empty(); }
};

QuantizedModules find_quantized(const ModelFile& m, const Scheme& sch) {
  QuantizedModules q;
  for (const auto& [name, t] : m.tensors) {
    if (const auto p = split_packed_name(name)) {
      const bool packed = m.tensors.count(p->first + ".weight_packed");
      const Tensor* w = m.find(p->first + ".weight");
      SHRINK_CHECK(packed || (w && w->dtype == DType::I8), m.path, ": tensor '", name, "' belongs to no quantized weight (",
                   p->first, " has neither weight_packed nor an I8 weight)");
      SHRINK_CHECK(!packed || !w, m.path, ": '", p->first, "' has both a dense and a packed weight");
      SHRINK_CHECK(is_linear_base(p->first), m.path, ": tensor '", name, "': '", p->first, "' is not a Linear");
      (packed ? q.packed : q.int8)[p->first] = hf_module(p->first, sch);
    } else if (t.dtype == DType::I8) {  // map_tensors lets I8 through only as "<x>.weight"
      const std::string base = name.substr(0, name.size() - 7);
      SHRINK_CHECK(is_linear_base(base), m.path, ": tensor '", name, "' is int8, but only Linear weights may be");
      SHRINK_CHECK(m.tensors.count(base + ".weight_scale"), m.path, ": int8 tensor '", name,
                   "' has no weight_scale beside it");
      q.int8[base] = hf_module(base, sch);
    }
  }
  return q;
}

// compressed-tensors writers may store the zero points of symmetric schemes
// (all zero); they mean nothing, anything else is an asymmetric scheme.
void drop_symmetric_zero_points(ModelFile& m, const std::string& base) {
  for (const char* suffix : {".weight_zero_point", ".input_zero_point"}) {
    const auto z = m.tensors.find(base + suffix);
    if (z == m.tensors.end()) continue;
    const Tensor t = z->second.to(DType::F32);
    for (int64_t i = 0; i < t.numel(); ++i)
      SHRINK_CHECK(t.f32()[i] == 0, m.path, ": ", base, suffix, " is not zero: asymmetric W8A8 is not supported");
    m.tensors.erase(z);
  }
}

// W8A8 linears: schemes from quantization_config, LLM.int8()'s threshold
// from config.json's shrink_outlier_threshold (compressed_tensors.h).
void import_int8(ModelFile& m, const json& cfg, const json& qc, const std::map<std::string, std::string>& modules) {
  std::vector<std::string> names;
  for (const auto& [_, module] : modules) names.push_back(module);
  const auto schemes = ct_resolve_int8_schemes(qc, names, m.path + "/config.json");
  const float threshold = static_cast<float>(hf::get_num(cfg, "shrink_outlier_threshold", 0.0, m.path + "/config.json"));
  SHRINK_CHECK(threshold >= 0 && std::isfinite(threshold), m.path, ": shrink_outlier_threshold must be >= 0");
  for (const auto& [base, module] : modules) {
    Int8Scheme s = schemes.at(module);
    s.outlier_threshold = threshold;
    SHRINK_CHECK(!(s.static_input && threshold > 0), m.path, ": ", module,
                 ": shrink_outlier_threshold (LLM.int8()) needs per-token activations, but its input scale is static");
    drop_symmetric_zero_points(m, base);
    check_int8_linear(m.tensors, base, s, m.path);
    m.int8[base] = s;
  }
}

// Quantized linears (compressed-tensors): resolves each one's scheme from
// quantization_config, unpacks pack-quantized zero points to the canonical
// {rows, n_groups} and checks every tensor (io/compressed_tensors.h).
void import_quantized(ModelFile& m, const json& cfg) {
  const json* qc = hf::field(cfg, "quantization_config");
  const Scheme sch = scheme_for(m.config.arch, m.config.qkv_bias);
  const QuantizedModules q = find_quantized(m, sch);
  if (!qc) {
    SHRINK_CHECK(q.empty(), m.path, ": quantized weights (",
                 q.packed.empty() ? q.int8.begin()->second : q.packed.begin()->second,
                 ") but config.json has no quantization_config");
    return;
  }
  SHRINK_CHECK(m.config.arch != Arch::GPT2 || q.empty(), m.path, ": quantized GPT-2 checkpoints are not supported ",
               "(its Conv1D layers are not compressed-tensors Linears)");
  if (!q.int8.empty()) import_int8(m, cfg, *qc, q.int8);
  if (q.packed.empty()) return;
  std::vector<std::string> names;
  for (const auto& [_, module] : q.packed) names.push_back(module);
  const auto schemes = ct_resolve_schemes(*qc, names, m.path + "/config.json");
  for (const auto& [base, module] : q.packed) {
    const PackedScheme& s = schemes.at(module);
    const int64_t rows = packed_weight_shape(m.get(base + ".weight_shape"), m.path + ": " + module)[0];
    const auto z = m.tensors.find(base + ".weight_zero_point");
    if (s.symmetric && z != m.tensors.end()) {
      m.tensors.erase(z);  // symmetric means zero point 0 (older writers stored it anyway)
    } else if (z != m.tensors.end()) {
      z->second = ct_zero_point_from_file(z->second, s, rows, m.path + ": " + module);
    }
    check_packed_linear(m.tensors, base, s, m.path);
    m.packed[base] = s;
  }
}

}  // namespace

ModelFile load_hf(const std::string& dir) {
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  SHRINK_CHECK(file_exists(cfg_path), dir, ": no config.json (expected a Hugging Face model directory)");
  const json cfg = hf::read_json(cfg_path);
  ModelFile m;
  m.format = "hf";
  m.path = dir;
  m.config = hf::parse_config(cfg, cfg_path, dir);
  SafetensorsData st = read_safetensors_dir(dir);
  map_tensors(m, st);
  // An absent head means tied; a head beside tie_word_embeddings=true is ignored, as HF does.
  if (!m.find("output.weight") && !m.find("output.weight_packed")) m.config.tied_embeddings = true;
  if (m.config.tied_embeddings) {
    m.tensors.erase("output.weight");
    for (const char* suffix : kPackedSuffixes) m.tensors.erase(std::string("output.") + suffix);
  }
  import_quantized(m, cfg);
  if (m.config.arch == Arch::GPT2)
    transpose_conv1d(m);
  else
    unpermute_qk(m);
  return m;
}

// ---------------------------------------------------------------- save

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// How one canonical tensor becomes its HF form: converted to `dtype`, then
// permuted to rotate-half order (llama q/k) or transposed to {in, out} (GPT-2 Conv1D).
TensorSource hf_source(const std::string& hf_name, const std::string& canon, const Tensor& t, const ModelConfig& c,
                       DType dtype) {
  int heads = 0;
  if (c.arch == Arch::Llama && c.rope_style == RopeStyle::Interleaved) {
    // heads from the rows, not the config: a structurally pruned model's layers differ
    if (ends_with(canon, ".attn_q.weight") || ends_with(canon, ".attn_q.bias") ||
        ends_with(canon, ".attn_k.weight") || ends_with(canon, ".attn_k.bias"))
      heads = int(t.shape[0] / c.head_dim);
  }
  bool transpose = false;
  if (c.arch == Arch::GPT2)
    for (const auto& n : kGpt2Conv1D)
      transpose = transpose || (canon.rfind("blk.", 0) == 0 && ends_with(canon, "." + n));
  TensorSource s{hf_name, dtype, t.shape, nullptr};
  if (transpose) {
    SHRINK_CHECK(t.ndim() == 2, canon, ": expected a 2-D weight, got ", shape_str(t.shape));
    s.shape = {t.shape[1], t.shape[0]};
  }
  s.get = [t, dtype, heads, transpose] {
    Tensor x = t.dtype == dtype ? t : t.to(dtype);
    if (heads) x = hf_permute_qk(x, heads);
    if (transpose) x = transpose_2d(x);
    return x;
  };
  return s;
}

// A pack-quantized linear's tensor in its file form (io/compressed_tensors.h):
// codes, shape and zero points stay integers, scales take the model dtype
// when that is lossless; q/k rows are permuted, then zero points packed.
TensorSource hf_packed_source(const std::string& hf_name, const std::string& base, const std::string& suffix,
                              const Tensor& t, const ModelFile& m, DType dtype) {
  const auto it = m.packed.find(base);
  SHRINK_CHECK(it != m.packed.end(), m.path, ": tensor '", base, ".", suffix, "' belongs to no packed linear");
  const PackedScheme scheme = it->second;
  const ModelConfig& c = m.config;
  int heads = 0;
  if (c.rope_style == RopeStyle::Interleaved && t.numel() > 1 && suffix != "weight_shape") {
    if (ends_with(base, ".attn_q") || ends_with(base, ".attn_k")) heads = int(t.shape[0] / c.head_dim);
  }
  TensorSource s{hf_name, t.dtype, t.shape, nullptr};
  if (suffix == "weight_scale") s.dtype = ct_scale_dtype(t, dtype);
  const bool zero = suffix == "weight_zero_point";
  if (zero) {
    s.dtype = scheme.group == -1 ? DType::I8 : DType::I32;
    s.shape = ct_zero_point_file_shape(t.shape, scheme);
  }
  s.get = [t, heads, zero, scheme, out = s.dtype] {
    Tensor x = t.dtype == out || zero ? t : t.to(out);
    if (heads) x = hf_permute_qk(x, heads);
    return zero ? ct_zero_point_to_file(x, scheme) : x;
  };
  return s;
}

// The HF modules of the dense linears beside quantized ones (quantization_config "ignore").
std::vector<std::string> dense_linear_modules(const ModelFile& m, const Scheme& s) {
  std::vector<std::string> out;
  for (const auto& [canon, t] : m.tensors) {
    if (!ends_with(canon, ".weight")) continue;
    const std::string base = canon.substr(0, canon.size() - 7);
    if (base != "output" && is_linear_base(base) && !m.int8.count(base)) out.push_back(hf_module(base, s));
  }
  if (!m.packed.count("output") && !m.int8.count("output")) out.push_back("lm_head");  // also when tied: HF's head is a Linear
  return out;
}

// A W8A8 linear's tensor in its file form (io/compressed_tensors.h): I8
// codes, scales in the model dtype when lossless; q/k rows (codes and
// per-row scales alike) permuted to rotate-half order.
TensorSource hf_int8_source(const std::string& hf_name, const std::string& base, const std::string& suffix,
                            const Tensor& t, const ModelConfig& c, DType dtype) {
  int heads = 0;
  if (c.rope_style == RopeStyle::Interleaved && suffix != "input_scale") {
    if (ends_with(base, ".attn_q") || ends_with(base, ".attn_k")) heads = int(t.shape[0] / c.head_dim);
  }
  TensorSource s{hf_name, suffix == "weight" ? DType::I8 : ct_scale_dtype(t, dtype), t.shape, nullptr};
  s.get = [t, heads, out = s.dtype] {
    Tensor x = t.dtype == out ? t : t.to(out);
    return heads ? hf_permute_qk(x, heads) : x;
  };
  return s;
}

std::vector<TensorSource> hf_sources(const ModelFile& m, const ModelConfig& c, DType dtype, bool exact) {
  const Scheme s = scheme_for(c.arch, c.qkv_bias);
  std::vector<TensorSource> out;
  std::vector<std::string> unknown;
  for (const auto& [canon, t] : m.tensors) {
    const auto packed = split_packed_name(canon);
    if (c.tied_embeddings && (canon == "output.weight" || (packed && packed->first == "output"))) continue;
    const auto hf = to_hf_any(canon, s);
    if (!hf) {
      unknown.push_back(canon);
      continue;
    }
    const std::string base = packed                       ? packed->first
                             : ends_with(canon, ".weight") ? canon.substr(0, canon.size() - 7)
                                                           : std::string();
    if (m.int8.count(base))
      out.push_back(hf_int8_source(*hf, base, packed ? packed->second : "weight", t, c, dtype));
    else if (packed)
      out.push_back(hf_packed_source(*hf, packed->first, packed->second, t, m, dtype));
    else  // exact: in dtype only when every value survives it (ct_scale_dtype), else F32
      out.push_back(hf_source(*hf, canon, t, c, exact ? ct_scale_dtype(t, dtype) : dtype));
  }
  SHRINK_CHECK(unknown.empty(), m.path, ": tensors with no Hugging Face ", arch_name(c.arch),
               " equivalent: ", join_some(unknown));
  return out;
}

// Tokenizer files beside the source model travel with it unchanged.
void copy_tokenizer_files(const std::string& model_path, const std::string& dir) {
  if (model_path.empty()) return;
  const fs::path src = is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
  std::error_code ec;
  if (fs::equivalent(src.empty() ? fs::path(".") : src, dir, ec)) return;
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "vocab.json", "merges.txt"}) {
    const fs::path p = src / name;
    if (file_exists(p.string()) && !is_directory(p.string()))
      write_text_file((fs::path(dir) / name).string(), read_text_file(p.string()));
  }
}

}  // namespace

void save_hf(const ModelFile& m, const std::string& dir, DType dtype, bool exact) {
  hf::torch_dtype(dtype);  // rejects non-float output types before anything is written
  ModelConfig c = m.config;
  c.validate(m.path.empty() ? dir : m.path);
  json cfg = hf::config_json(c, dtype, m.tokenizer.get(), m.path);
  if (!m.packed.empty() || !m.int8.empty()) {
    SHRINK_CHECK(c.arch != Arch::GPT2, m.path,
                 ": GPT-2 cannot be written quantized in compressed-tensors form (its Conv1D layers are not "
                 "compressed-tensors Linears)");
    const Scheme s = scheme_for(c.arch, c.qkv_bias);
    std::map<std::string, PackedScheme> modules;
    for (const auto& [base, scheme] : m.packed) {
      if (c.tied_embeddings && base == "output") continue;
      check_packed_linear(m.tensors, base, scheme, m.path);
      modules[hf_module(base, s)] = scheme;
    }
    std::map<std::string, Int8Scheme> int8;
    float threshold = -1;  // LLM.int8(): one threshold for the model (config.json has one key)
    for (const auto& [base, scheme] : m.int8) {
      SHRINK_CHECK(!(c.tied_embeddings && base == "output"), m.path, ": a tied output head cannot be int8");
      check_int8_linear(m.tensors, base, scheme, m.path);
      SHRINK_CHECK(threshold < 0 || threshold == scheme.outlier_threshold, m.path,
                   ": LLM.int8() linears with different outlier thresholds cannot be saved (one per model)");
      threshold = scheme.outlier_threshold;
      int8[hf_module(base, s)] = scheme;
    }
    cfg["quantization_config"] = ct_quantization_config(modules, dense_linear_modules(m, s), int8);
    if (threshold > 0) cfg["shrink_outlier_threshold"] = hf::tidy(threshold);
  }
  std::vector<TensorSource> sources = hf_sources(m, c, dtype, exact);
  write_safetensors_model(dir, sources, {{"format", "pt"}});
  write_text_file((fs::path(dir) / "config.json").string(), cfg.dump(2) + "\n");
  copy_tokenizer_files(m.path, dir);
}

}  // namespace shrink
