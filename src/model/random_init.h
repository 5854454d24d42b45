// Random-weight models of any supported shape (`shrink init`): for speed work
// on real shapes (llama-500m, tinyllama-1.1b) and for tests and the demo when
// no trained model is at hand. Their quality figures mean nothing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/model_file.h"

namespace shrink {

// Known shapes: "llama-500m", "tinyllama-1.1b", "gpt2-124m", "tiny" (a few
// hundred K parameters, for tests). Throws listing them on an unknown name.
ModelConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();
// Reads a JSON config: either shrink's field names (dim, hidden_dim, n_layers,
// n_heads, n_kv_heads, vocab_size, max_seq_len, arch, ...) or a Hugging Face config.json.
ModelConfig config_from_json_file(const std::string& path);

// Weights ~ U(-a, a) with std 0.02 (output projections scaled by 1/sqrt(2L)),
// norms 1, biases 0; matrices stored as `dtype`, 1-D tensors as f32.
// Deterministic in `seed` whatever the thread count. The vocabulary is a
// byte-fallback SPM vocab (<unk>, <s>, </s>, 256 byte tokens, then ASCII
// letters and padding), so any text can be encoded.
ModelFile random_model(const ModelConfig& c, DType dtype, uint64_t seed);

}  // namespace shrink
