// Training checkpoints: everything a run needs to continue bit-identically.
//
// File layout (little-endian):
//   "SHRKCKPT"  u32 version  u64 header_bytes  header (JSON)
//   then for each parameter, in TransformerParams::all() order:
//   u64 numel, f32 value[numel], f32 adam_m[numel], f32 adam_v[numel]
// The JSON header holds the model config, the run's options, the step, the
// tokens seen, the sampler counter, AdamW's step count, the parameter names
// and shapes, and the identity of the training data. Written through
// AtomicWriter (temp file, fsync, rename), so a run killed while writing
// leaves the previous checkpoint intact.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "train/llama_graph.h"
#include "train/optim.h"

namespace shrink::train {

nlohmann::json config_to_json(const ModelConfig& c);
ModelConfig config_from_json(const nlohmann::json& j);

// Writes header + parameters + AdamW moments to `path` atomically.
void write_checkpoint(const std::string& path, const nlohmann::json& header, const std::vector<Parameter*>& params,
                      AdamW& opt);
// The JSON header of a checkpoint (throws naming the file on a bad one).
nlohmann::json read_checkpoint_header(const std::string& path);
// Reads the parameters and AdamW moments back; names and shapes must match.
// Returns the header.
nlohmann::json read_checkpoint(const std::string& path, const std::vector<Parameter*>& params, AdamW& opt);

}  // namespace shrink::train
