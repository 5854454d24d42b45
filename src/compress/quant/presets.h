// llama-quantize's recipes ("ftypes"): Q4_K_M and friends are not one type but
// a per-tensor mix — a base type, the output head at Q6_K, and more bits for
// attn_v / ffn_down / attn_output in chosen layers. apply_preset reproduces
// llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for dense (non-MoE)
// Llama-family and GPT-2 models, so `--preset Q4_K_M` gives the same types
// tensor by tensor as `llama-quantize model Q4_K_M`; any method (RTN, imatrix,
// GPTQ, AWQ) can then fill them.
#pragma once
#include <string>
#include <vector>

#include "compress/quant/quantize.h"
#include "model/transformer.h"

namespace shrink::quant {

// Recipe names shrink knows, upper case ("Q4_K_M", "Q3_K_S", ...; plain types
// such as "Q4_0" and "Q8_0" are recipes too: base type + Q6_K head).
std::vector<std::string> preset_names();
bool is_preset(const std::string& name);  // case-insensitive

// Sets opt.target (the base type), opt.head, opt.embed / quantize_embed and
// opt.per_layer for `model`. Throws for an unknown name.
void apply_preset(const std::string& name, Transformer& model, QuantizeOptions& opt);

}  // namespace shrink::quant
