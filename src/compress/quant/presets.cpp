#include "compress/quant/presets.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "core/error.h"

namespace shrink::quant {

namespace {

struct Recipe {
  const char* name;
  DType base;
};

// The base type of each recipe (llama_model_quantize_impl's default_type).
constexpr Recipe kRecipes[] = {
    {"Q4_0", DType::Q4_0},   {"Q4_1", DType::Q4_1},   {"Q5_0", DType::Q5_0},   {"Q5_1", DType::Q5_1},
    {"Q8_0", DType::Q8_0},   {"Q2_K", DType::Q2_K},   {"Q3_K_S", DType::Q3_K}, {"Q3_K_M", DType::Q3_K},
    {"Q3_K_L", DType::Q3_K}, {"Q4_K_S", DType::Q4_K}, {"Q4_K_M", DType::Q4_K}, {"Q5_K_S", DType::Q5_K},
    {"Q5_K_M", DType::Q5_K}, {"Q6_K", DType::Q6_K},
};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

const Recipe* find_recipe(const std::string& name) {
  const std::string u = upper(name);
  for (const Recipe& r : kRecipes)
    if (u == r.name) return &r;
  return nullptr;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every
// third one between them get the bigger type.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// The type of one block Linear ("attn_v", "ffn_down", ...) of layer i of n
// (llama_tensor_get_type for non-MoE, non-Falcon models).
DType layer_type(const std::string& r, DType base, const std::string& kind, int i, int n, int n_gqa,
                 bool has_imatrix) {
  if (kind == "attn_v") {
    if (r == "Q2_K") return n_gqa >= 4 ? DType::Q4_K : DType::Q3_K;
    if (r == "Q3_K_M") return i < 2 ? DType::Q5_K : DType::Q4_K;
    if (r == "Q3_K_L") return DType::Q5_K;
    if ((r == "Q4_K_M" || r == "Q5_K_M") && use_more_bits(i, n)) return DType::Q6_K;
    if (r == "Q4_K_S" && i < 4) return DType::Q5_K;
  } else if (kind == "ffn_down") {
    if (r == "Q2_K") return DType::Q3_K;
    if (r == "Q3_K_M") return i < n / 16 ? DType::Q5_K : DType::Q4_K;
    if (r == "Q3_K_L") return DType::Q5_K;
    if ((r == "Q4_K_M" || r == "Q5_K_M") && use_more_bits(i, n)) return DType::Q6_K;
    if (r == "Q4_K_S" && i < n / 8) return DType::Q5_K;
    // llama.cpp guards the first ffn_down layers of Q4_0/Q5_0 only when an imatrix is given.
    if ((r == "Q4_0" || r == "Q5_0") && has_imatrix && i < n / 8) return r == "Q4_0" ? DType::Q4_1 : DType::Q5_1;
  } else if (kind == "attn_output") {
    if (r == "Q2_K") return DType::Q3_K;
    if (r == "Q3_K_M") return DType::Q4_K;
    if (r == "Q3_K_L") return DType::Q5_K;
  } else if (kind == "attn_qkv") {
    if (r == "Q3_K_M" || r == "Q3_K_L") return DType::Q4_K;
    if (r == "Q4_K_M") return DType::Q5_K;
    if (r == "Q5_K_M") return DType::Q6_K;
  }
  return base;
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> v;
  for (const Recipe& r : kRecipes) v.emplace_back(r.name);
  return v;
}

bool is_preset(const std::string& name) { return find_recipe(name) != nullptr; }

void apply_preset(const std::string& name, Transformer& model, QuantizeOptions& opt) {
  const Recipe* rec = find_recipe(name);
  if (!rec) {
    std::string known;
    for (const Recipe& r : kRecipes) known += std::string(known.empty() ? "" : ", ") + r.name;
    fail("unknown preset '", name, "' (", known, ")");
  }
  const std::string r = rec->name;
  const ModelConfig& cfg = model.config();
  const int n = cfg.n_layers, n_gqa = cfg.n_kv_heads > 0 ? cfg.n_heads / cfg.n_kv_heads : 1;
  opt.target = QuantTarget::of_block(rec->base);
  // The head: Q6_K unless the recipe is Q8_0, and Q8_0 when its rows do not
  // split into the base type's blocks (llama.cpp's output-tensor rule).
  const int64_t head_cols = model.output().in_features();
  const bool head_fits = head_cols % dtype_traits(rec->base).block_elems == 0;
  opt.head = QuantTarget::of_block(!head_fits || rec->base == DType::Q8_0 ? DType::Q8_0 : DType::Q6_K);
  opt.quantize_embed = true;
  opt.embed = cfg.tied_embeddings ? opt.head : opt.target;
  opt.per_layer.clear();
  const bool has_imatrix = opt.method == "imatrix";
  for (Linear* l : model.linears()) {
    const std::string& full = l->name();  // "blk.<i>.<kind>"
    int layer = -1;
    char kind[64] = {};
    if (std::sscanf(full.c_str(), "blk.%d.%63s", &layer, kind) != 2) continue;
    const DType t = layer_type(r, rec->base, kind, layer, n, n_gqa, has_imatrix);
    if (t != rec->base) opt.per_layer[full] = QuantTarget::of_block(t);
  }
}

}  // namespace shrink::quant
