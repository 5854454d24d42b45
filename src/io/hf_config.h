// config.json of Hugging Face model directories <-> ModelConfig: reading (with
// the checks that refuse what the canonical layout cannot hold) and writing,
// shared by load_hf and save_hf (hf_model.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/dtype.h"
#include "model/config.h"

namespace shrink {

class Tokenizer;

namespace hf {

nlohmann::json read_json(const std::string& path);

// A field that may be absent or null (HF writes null for "use the default").
const nlohmann::json* field(const nlohmann::json& j, const char* key);
double get_num(const nlohmann::json& j, const char* key, double def, const std::string& src);

// Detects the family (llama, mistral, qwen2, gpt2) and parses its fields; the
// model is named after `dir`.
ModelConfig parse_config(const nlohmann::json& cfg, const std::string& src, const std::string& dir);

// config.json of a model saved in `dtype`, with the token ids of `tok` (if any).
nlohmann::json config_json(const ModelConfig& c, DType dtype, const Tokenizer* tok, const std::string& src);

// "float32", "float16" or "bfloat16"; fails for any other type.
std::string torch_dtype(DType t);

// The shortest decimal that reads back as the same float, so 1e-5f is written
// as 1e-05 rather than 9.999999747378752e-06.
double tidy(float f);

}  // namespace hf
}  // namespace shrink
