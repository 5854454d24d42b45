// Training checkpoints: everything a run needs to continue bit-identically.
//
// File layout (little-endian):
//   "SHRKCKPT"  u32 version  u64 header_bytes  header (JSON)
//   then for each parameter, in TransformerParams::all() order:
//   u64 numel, f32 value[numel], then the optimizer's state:
//     AdamW: f32 adam_m[numel], f32 adam_v[numel]
//     SGD:   f32 momentum_buffer[numel]
// The JSON header holds the model config, the run's options, the step, the
// tokens seen, the sampler counter, "optimizer" ("adamw" | "sgd"; absent in
// checkpoints written before SGD was selectable, which are AdamW), AdamW's
// step count ("adam_steps", AdamW only), the parameter names and shapes, and
// the identity of the training data. The version stays 1: the header's
// "optimizer" says which state follows, and old AdamW files read unchanged. Written through
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

// Writes header + parameters + the optimizer's state to `path` atomically.
void write_checkpoint(const std::string& path, const nlohmann::json& header, const std::vector<Parameter*>& params,
                      Optimizer& opt);
// The JSON header of a checkpoint (throws naming the file on a bad one).
nlohmann::json read_checkpoint_header(const std::string& path);
// Reads the parameters and the optimizer's state back; names, shapes and the
// optimizer must match. Returns the header.
nlohmann::json read_checkpoint(const std::string& path, const std::vector<Parameter*>& params, Optimizer& opt);

}  // namespace shrink::train
