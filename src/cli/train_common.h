// What `shrink train`, `shrink distill` and `shrink finetune` share: the
// training options and data flags, loading the token streams, the loss log,
// the resume/validate/progress loop around a train::Trainer, and writing the
// trained model as GGUF.
#pragma once
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "compress/prune/gradual.h"
#include "io/model_file.h"
#include "train/trainer.h"

namespace shrink::cli {

// The flags of a training run besides the model: data, hyper-parameters, checkpoints, log.
struct TrainRunArgs {
  std::string data, val, cache_dir = train::default_token_cache_dir(), out, log;
  std::string dtype = "f32";
  double val_fraction = 0.01;
  bool resume = false, no_cache = false;
  int threads = 0;
  train::TrainOptions o;
};

// Registers --data, --val, ..., --steps, --lr, ..., --ckpt-dir, --resume, --log, -o, --dtype, -t on `cmd`.
void add_train_run_options(CLI::App* cmd, TrainRunArgs& a);
// Checks the flags that do not need the model (output name, dtype, --resume), sets threads and the allocator.
// gguf_output: -o must be a .gguf file (`shrink qat` checks its output itself: GGUF or a directory).
void prepare_train_run(const TrainRunArgs& a, bool gguf_output = true);
// Train and validation token streams: --val FILE, or the last --val-fraction of --data.
train::TokenSplit load_train_data(const TrainRunArgs& a, const Tokenizer& tok, const std::string& tag);
// Resumes from --ckpt-dir when --resume, then trains to the end with the log,
// validation and a progress line prefixed "tag: ".
void run_trainer(train::Trainer& trainer, const TrainRunArgs& a, const train::TokenSplit& data, const std::string& tag);
// Writes the parameters as a GGUF model with its tokenizer (2-D weights in `dtype`).
void save_trained_model(train::TransformerParams& p, std::shared_ptr<Tokenizer> tok, const TrainRunArgs& a);
std::string fmt_num(const char* f, double v);

// --prune-to S and its schedule: gradual magnitude pruning (AGP) of the block
// Linears while training (`shrink train --init`, `shrink distill`).
struct GradualPruneArgs {
  double to = 0;  // 0 = off
  double from = 0;
  int64_t start = 0, end = -1, every = 10;  // end < 0: 3/4 of the way from start to --steps
};
void add_gradual_prune_options(CLI::App* cmd, GradualPruneArgs& a);
// When --prune-to is given: installs the pruner as objective.after_update and
// records its schedule in the objective's trajectory (a resumed run must match).
void attach_gradual_pruning(const GradualPruneArgs& a, const train::TrainOptions& o, train::TransformerParams& model,
                            train::TrainObjective& objective);

}  // namespace shrink::cli
