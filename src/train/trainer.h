// The training loop of `shrink train`: AdamW or SGD with momentum over a
// model graph (Llama or GPT-2, model_logits), random windows from a token
// stream, warmup + cosine schedule, gradient clipping and accumulation,
// periodic validation and checkpoints. Deterministic: the same options, data,
// seed and thread count give bit-identical weights, and a run resumed from a
// checkpoint continues exactly where it stopped (everything a step depends on
// — master weights, the optimizer's state (AdamW moments and step count, or
// SGD's momentum buffers), the sampler's counter, the step index — is in the
// checkpoint).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/llama_graph.h"
#include "train/optim.h"
#include "train/token_data.h"

namespace shrink::train {

struct TrainOptions {
  int64_t steps = 1000;
  int64_t batch = 8;       // sequences per micro-batch
  int64_t seq_len = 256;
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup = 50;
  // weight_decay is AdamW's decoupled decay (θ ← θ − lr·wd·θ) or, with SGD,
  // coupled L2 (wd·θ added to the gradient, so it goes through the momentum).
  double weight_decay = 0.1, clip = 1.0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  std::string optimizer = "adamw";  // "adamw" | "sgd" (SGD with momentum, PyTorch form)
  double momentum = 0.9;            // SGD only
  uint64_t seed = 1;
  // Not part of the trajectory (may change between a run and its resumption):
  int64_t val_every = 0;       // 0 = only at the end
  int64_t val_tokens = 65536;  // scored validation tokens (0 = all)
  int64_t ckpt_every = 0;      // 0 = only at the end
  std::string ckpt_dir;        // "" = no checkpoints

  int64_t tokens_per_step() const { return batch * seq_len * grad_accum; }
  void validate() const;  // throws naming the bad option
};
// The options that decide the weights (everything but validation/checkpoint cadence).
nlohmann::json trajectory_json(const TrainOptions& o);

struct TrainState {
  int64_t step = 0;             // optimizer steps done
  int64_t tokens_seen = 0;
  uint64_t sampler_counter = 0;
};

struct StepStats {
  int64_t step = 0, tokens_seen = 0;
  double loss = 0, lr = 0, grad_norm = 0, seconds = 0, tokens_per_second = 0;
};

// What a run minimises and over which parameters; the default (all fields
// empty) is `shrink train`'s: cross-entropy of the model's logits, every model
// parameter trained. `shrink distill` supplies a KD loss and extra parameters
// (a hidden-state projection); `shrink finetune --lora` a graph with a frozen
// base and the adapters as the only parameters.
struct TrainObjective {
  // The loss of one micro-batch, built on g (default: CE of llama_logits with graph_options).
  std::function<Var(Graph& g, const Batch& b)> loss;
  // How the model's graph is built (LoRA, frozen base); validation uses it too.
  GraphOptions graph_options;
  // The trained parameters in a fixed order (default: model.all()).
  std::vector<Parameter*> params;
  // Runs on the weights after each optimizer update with the number of steps
  // done, and once before a Trainer's first step with the steps done so far
  // (0, or the checkpoint's): gradual pruning's re-masking
  // (compress/prune/gradual.h). Must be idempotent and a function of the
  // weights and the step alone, so a resumed run stays bit-identical.
  std::function<void(int64_t steps_done)> after_update;
  // Whatever else decides the weights (loss kind, α, T, LoRA rank, the teacher):
  // kept in the checkpoint, and a resumed run must match it.
  nlohmann::json trajectory;
};

class Trainer {
 public:
  // `model` is trained in place; `train`/`valid` must outlive the Trainer.
  Trainer(TransformerParams& model, const std::vector<int32_t>& train, const std::vector<int32_t>& valid,
          TrainOptions opts, TrainObjective objective = {});

  StepStats step();   // one optimizer step (grad_accum micro-batches)
  double validate();  // mean cross-entropy over the validation windows (NaN when there are none)
  bool done() const { return state_.step >= opts_.steps; }

  // Runs until `until_step` (or opts.steps), validating and checkpointing on
  // the options' cadence and checkpointing at the end. on_val gets (step, loss).
  void run(int64_t until_step, const std::function<void(const StepStats&)>& on_step,
           const std::function<void(int64_t, double)>& on_val);

  std::string checkpoint_path() const;  // ckpt_dir/last.ckpt ("" without ckpt_dir)
  void save_checkpoint(const std::string& path) const;
  // Restores weights, optimizer state, step and sampler from `path`; throws when
  // the checkpoint belongs to another model shape, data or hyper-parameters.
  void restore(const std::string& path);

  const TrainState& state() const { return state_; }
  const TrainOptions& options() const { return opts_; }
  uint64_t data_hash() const { return data_hash_; }

 private:
  void restore_checked(const std::string& path);

  nlohmann::json trajectory() const;  // trajectory_json(opts_) + the objective's

  TransformerParams& model_;
  TrainObjective objective_;
  std::vector<Parameter*> params_;
  const std::vector<int32_t>& valid_;
  TrainOptions opts_;
  Optimizer opt_;
  LrSchedule schedule_;
  WindowSampler sampler_;
  TrainState state_;
  uint64_t data_hash_;
  bool first_step_hooked_ = false;
};

}  // namespace shrink::train
