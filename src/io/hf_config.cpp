// Hugging Face config.json <-> ModelConfig (see hf_config.h).
#include "io/hf_config.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "io/tokenizer.h"

namespace shrink::hf {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

enum class Family { Llama, Qwen2, GPT2 };

int get_int(const json& j, const char* key, const std::string& src, std::optional<int> def = std::nullopt) {
  const json* v = field(j, key);
  if (!v) {
    SHRINK_CHECK(def.has_value(), src, ": missing \"", key, "\"");
    return *def;
  }
  SHRINK_CHECK(v->is_number_integer() && v->get<int64_t>() >= 0 && v->get<int64_t>() <= (int64_t(1) << 30), src, ": \"",
               key, "\" must be a non-negative integer");
  return v->get<int>();
}

bool get_bool(const json& j, const char* key, bool def, const std::string& src) {
  const json* v = field(j, key);
  if (!v) return def;
  SHRINK_CHECK(v->is_boolean(), src, ": \"", key, "\" must be true or false");
  return v->get<bool>();
}

std::string get_str(const json& j, const char* key, const std::string& def) {
  const json* v = field(j, key);
  return v && v->is_string() ? v->get<std::string>() : def;
}

Family detect_family(const json& cfg, const std::string& src) {
  static const std::map<std::string, Family> kTypes = {
      {"llama", Family::Llama}, {"mistral", Family::Llama}, {"qwen2", Family::Qwen2}, {"gpt2", Family::GPT2}};
  static const std::map<std::string, Family> kArchs = {{"LlamaForCausalLM", Family::Llama},
                                                       {"MistralForCausalLM", Family::Llama},
                                                       {"Qwen2ForCausalLM", Family::Qwen2},
                                                       {"GPT2LMHeadModel", Family::GPT2}};
  std::string type = get_str(cfg, "model_type", "");
  if (type.empty()) {
    const json* a = field(cfg, "architectures");
    if (a && a->is_array() && !a->empty() && (*a)[0].is_string()) {
      const auto it = kArchs.find((*a)[0].get<std::string>());
      if (it != kArchs.end()) return it->second;
      type = (*a)[0].get<std::string>();
    }
  }
  const auto it = kTypes.find(type);
  SHRINK_CHECK(it != kTypes.end(), src, ": unsupported model_type '", type,
               "' (supported: llama, mistral, qwen2, gpt2)");
  return it->second;
}

// rope_scaling: null, or {"type"|"rope_type": "linear"|"default", "factor": f}.
float parse_rope_scaling(const json& cfg, const std::string& src) {
  const json* rs = field(cfg, "rope_scaling");
  if (!rs) return 1.0f;
  SHRINK_CHECK(rs->is_object(), src, ": \"rope_scaling\" must be an object or null");
  const std::string type = get_str(*rs, "rope_type", get_str(*rs, "type", ""));
  if (type == "default") return 1.0f;
  SHRINK_CHECK(type == "linear", src, ": rope_scaling type '", type, "' is not supported (only linear)");
  const double f = get_num(*rs, "factor", 0.0, src);
  SHRINK_CHECK(f > 0, src, ": rope_scaling factor must be positive");
  return static_cast<float>(f);
}

// A structurally pruned model's per-layer sizes (written by llama_config_json).
void read_per_layer_sizes(const json& cfg, ModelConfig& c, const std::string& src) {
  const char* keys[] = {"num_attention_heads_per_layer", "num_key_value_heads_per_layer", "intermediate_size_per_layer"};
  std::vector<int> v[3];
  int present = 0;
  for (int i = 0; i < 3; ++i) {
    if (!cfg.contains(keys[i])) continue;
    ++present;
    SHRINK_CHECK(cfg[keys[i]].is_array() && int(cfg[keys[i]].size()) == c.n_layers, src, ": ", keys[i],
                 " must be an array of ", c.n_layers, " integers");
    for (const auto& x : cfg[keys[i]]) {
      SHRINK_CHECK(x.is_number_integer() && x.get<int64_t>() > 0 && x.get<int64_t>() < (1 << 24), src, ": ", keys[i],
                   " has an invalid entry");
      v[i].push_back(x.get<int>());
    }
  }
  if (!present) return;
  SHRINK_CHECK(present == 3 && c.head_dim > 0, src, ": per-layer sizes need all of ", keys[0], ", ", keys[1], ", ",
               keys[2], " and head_dim");
  c.set_layer_sizes(v[0], v[1], v[2]);
}

ModelConfig parse_llama_config(const json& cfg, Family fam, const std::string& src) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.dim = get_int(cfg, "hidden_size", src);
  c.hidden_dim = get_int(cfg, "intermediate_size", src);
  c.n_layers = get_int(cfg, "num_hidden_layers", src);
  c.n_heads = get_int(cfg, "num_attention_heads", src);
  c.n_kv_heads = get_int(cfg, "num_key_value_heads", src, c.n_heads);
  c.head_dim = get_int(cfg, "head_dim", src, 0);
  c.vocab_size = get_int(cfg, "vocab_size", src);
  c.max_seq_len = get_int(cfg, "max_position_embeddings", src, 0);
  c.norm_eps = static_cast<float>(get_num(cfg, "rms_norm_eps", 1e-6, src));
  c.rope_theta = static_cast<float>(get_num(cfg, "rope_theta", 10000.0, src));
  c.rope_scale = parse_rope_scaling(cfg, src);
  c.tied_embeddings = get_bool(cfg, "tie_word_embeddings", false, src);
  c.qkv_bias = fam == Family::Qwen2;
  const std::string act = get_str(cfg, "hidden_act", "silu");
  SHRINK_CHECK(act == "silu", src, ": hidden_act '", act, "' is not supported (llama needs silu)");
  // Llama's attention_bias also adds an o_proj bias, which the canonical layout has no place for.
  SHRINK_CHECK(fam != Family::Llama || !get_bool(cfg, "attention_bias", false, src), src,
               ": attention_bias=true is not supported for llama");
  SHRINK_CHECK(!get_bool(cfg, "mlp_bias", false, src), src, ": mlp_bias=true is not supported");
  read_per_layer_sizes(cfg, c, src);
  return c;
}

ModelConfig parse_gpt2_config(const json& cfg, const std::string& src) {
  ModelConfig c;
  c.arch = Arch::GPT2;
  c.dim = get_int(cfg, "n_embd", src);
  c.n_layers = get_int(cfg, "n_layer", src);
  c.n_heads = get_int(cfg, "n_head", src);
  c.n_kv_heads = c.n_heads;
  c.hidden_dim = get_int(cfg, "n_inner", src, 4 * c.dim);
  c.max_seq_len = get_int(cfg, "n_positions", src, 1024);
  c.vocab_size = get_int(cfg, "vocab_size", src);
  c.norm_eps = static_cast<float>(get_num(cfg, "layer_norm_epsilon", 1e-5, src));
  c.tied_embeddings = get_bool(cfg, "tie_word_embeddings", true, src);
  const std::string act = get_str(cfg, "activation_function", "gelu_new");
  SHRINK_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh", src, ": activation_function '", act,
               "' is not supported (gpt2 needs the tanh GELU, gelu_new)");
  return c;
}

void add_token_ids(json& j, const Tokenizer* tok) {
  if (!tok) return;
  if (tok->bos_id() >= 0) j["bos_token_id"] = tok->bos_id();
  if (tok->eos_id() >= 0) j["eos_token_id"] = tok->eos_id();
}

json llama_config_json(const ModelConfig& c) {
  json j;
  const bool qwen = c.qkv_bias;  // a llama with q/k/v biases is what HF calls qwen2
  j["architectures"] = {qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = qwen ? "qwen2" : "llama";
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  if (!c.uniform()) {  // shrink's keys for a structurally pruned model (docs/pruning.md); the scalars are the maxima
    std::vector<int> h, kv, ff;
    for (int l = 0; l < c.n_layers; ++l) h.push_back(c.heads(l)), kv.push_back(c.kv_heads(l)), ff.push_back(c.ffn_dim(l));
    j["num_attention_heads_per_layer"] = h;
    j["num_key_value_heads_per_layer"] = kv;
    j["intermediate_size_per_layer"] = ff;
  }
  j["vocab_size"] = c.vocab_size;
  if (c.max_seq_len > 0) j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = tidy(c.norm_eps);
  j["rope_theta"] = tidy(c.rope_theta);
  j["rope_scaling"] = nullptr;
  if (c.rope_scale != 1.0f)
    j["rope_scaling"] = {{"type", "linear"}, {"rope_type", "linear"}, {"factor", tidy(c.rope_scale)}};
  j["hidden_act"] = "silu";
  if (qwen) {
    j["use_sliding_window"] = false;
  } else {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
  }
  return j;
}

json gpt2_config_json(const ModelConfig& c, const std::string& src) {
  SHRINK_CHECK(c.n_kv_heads == c.n_heads && c.head_dim * c.n_heads == c.dim, src,
               ": GPT-2 in HF format needs n_kv_heads == n_heads and head_dim == dim / n_heads");
  json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["n_embd"] = c.dim;
  j["n_layer"] = c.n_layers;
  j["n_head"] = c.n_heads;
  j["n_inner"] = c.hidden_dim;
  j["n_positions"] = c.max_seq_len;
  j["n_ctx"] = c.max_seq_len;
  j["vocab_size"] = c.vocab_size;
  j["layer_norm_epsilon"] = tidy(c.norm_eps);
  j["activation_function"] = "gelu_new";
  return j;
}

}  // namespace

json read_json(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
}

const json* field(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

double get_num(const json& j, const char* key, double def, const std::string& src) {
  const json* v = field(j, key);
  if (!v) return def;
  SHRINK_CHECK(v->is_number(), src, ": \"", key, "\" must be a number");
  return v->get<double>();
}

ModelConfig parse_config(const json& cfg, const std::string& src, const std::string& dir) {
  SHRINK_CHECK(cfg.is_object(), src, ": expected a JSON object");
  const Family fam = detect_family(cfg, src);
  ModelConfig c = fam == Family::GPT2 ? parse_gpt2_config(cfg, src) : parse_llama_config(cfg, fam, src);
  c.rope_style = RopeStyle::Interleaved;  // after the un-permutation below
  c.name = fs::path(dir).filename().string();
  if (c.name.empty()) c.name = fs::path(dir).parent_path().filename().string();
  c.validate(src);
  return c;
}

json config_json(const ModelConfig& c, DType dtype, const Tokenizer* tok, const std::string& src) {
  json j = c.arch == Arch::GPT2 ? gpt2_config_json(c, src) : llama_config_json(c);
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["torch_dtype"] = torch_dtype(dtype);
  add_token_ids(j, tok);
  return j;
}

std::string torch_dtype(DType t) {
  switch (t) {
    case DType::F32:
      return "float32";
    case DType::F16:
      return "float16";
    case DType::BF16:
      return "bfloat16";
    default:
      fail("HF output dtype must be f32, f16 or bf16, not ", dtype_name(t));
  }
}

double tidy(float f) {
  char buf[32];
  for (int prec = 6; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, double(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return std::strtod(buf, nullptr);
}

}  // namespace shrink::hf
