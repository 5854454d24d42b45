#include "train/trainer.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/cpu.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/losses.h"
#include "train/ops.h"

namespace shrink::train {

namespace {
uint64_t hash_tokens(const std::vector<int32_t>& t) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the ids, 64-bit
  for (int32_t id : t) h = (h ^ uint32_t(id)) * 0x100000001b3ull;
  return h ^ t.size();
}

TrainOptions validated(TrainOptions o) {
  o.validate();
  return o;
}

Optimizer make_optimizer(const std::vector<Parameter*>& params, const TrainOptions& o) {
  if (o.optimizer == "sgd") return Optimizer(Sgd(params, SgdConfig{o.momentum, o.weight_decay}));
  return Optimizer(AdamW(params, AdamWConfig{o.beta1, o.beta2, o.eps, o.weight_decay}));
}
}  // namespace

void TrainOptions::validate() const {
  SHRINK_CHECK(steps > 0, "--steps must be positive (got ", steps, ")");
  SHRINK_CHECK(batch > 0, "--batch must be positive (got ", batch, ")");
  SHRINK_CHECK(seq_len > 0, "--seq-len must be positive (got ", seq_len, ")");
  SHRINK_CHECK(grad_accum > 0, "--grad-accum must be positive (got ", grad_accum, ")");
  SHRINK_CHECK(lr > 0 && std::isfinite(lr), "--lr must be positive (got ", lr, ")");
  SHRINK_CHECK(min_lr >= 0 && min_lr <= lr, "--min-lr must be in [0, --lr] (got ", min_lr, ")");
  SHRINK_CHECK(warmup >= 0, "--warmup must be >= 0 (got ", warmup, ")");
  SHRINK_CHECK(weight_decay >= 0, "--wd must be >= 0 (got ", weight_decay, ")");
  SHRINK_CHECK(optimizer == "adamw" || optimizer == "sgd", "--optimizer must be adamw or sgd (got '", optimizer,
               "')");
  SHRINK_CHECK(momentum >= 0 && momentum < 1, "--momentum must be in [0, 1) (got ", momentum, ")");
  SHRINK_CHECK(clip >= 0, "--clip must be >= 0 (0 = off; got ", clip, ")");
  SHRINK_CHECK(val_every >= 0 && val_tokens >= 0 && ckpt_every >= 0,
               "--val-every, --val-tokens and --ckpt-every must be >= 0");
}

nlohmann::json trajectory_json(const TrainOptions& o) {
  nlohmann::json t = {{"steps", o.steps}, {"batch", o.batch}, {"seq_len", o.seq_len}, {"grad_accum", o.grad_accum},
                      {"lr", o.lr}, {"min_lr", o.min_lr}, {"warmup", o.warmup}, {"wd", o.weight_decay},
                      {"clip", o.clip}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}, {"seed", o.seed}};
  // Only a non-default optimizer adds keys, so AdamW runs keep the JSON (and
  // resume the checkpoints) they had before SGD was selectable.
  if (o.optimizer != "adamw") {
    t["optimizer"] = o.optimizer;
    t["momentum"] = o.momentum;
  }
  return t;
}

Trainer::Trainer(TransformerParams& model, const std::vector<int32_t>& train, const std::vector<int32_t>& valid,
                 TrainOptions opts, TrainObjective objective)
    : model_(model),
      objective_(std::move(objective)),
      params_(objective_.params.empty() ? model.all() : objective_.params),
      valid_(valid),
      opts_(validated(std::move(opts))),
      opt_(make_optimizer(params_, opts_)),
      schedule_{opts_.lr, opts_.min_lr, opts_.warmup, opts_.steps},
      sampler_(&train, opts_.seq_len, opts_.seed),
      data_hash_(hash_tokens(train)) {
  SHRINK_CHECK(opts_.seq_len <= model.cfg.max_seq_len || model.cfg.max_seq_len == 0, "--seq-len ", opts_.seq_len,
               " is longer than the model's context (", model.cfg.max_seq_len, ")");
}

StepStats Trainer::step() {
  const double t0 = now_seconds();
  // Once before this Trainer's first step, fresh or resumed: a resumed pruner
  // must read its masks off the checkpoint's zeros before an update moves them.
  if (!first_step_hooked_ && objective_.after_update) objective_.after_update(state_.step);
  first_step_hooked_ = true;
  zero_grad(params_);
  double loss_sum = 0;
  for (int64_t a = 0; a < opts_.grad_accum; ++a) {
    const Batch b = sampler_.next(opts_.batch);
    Graph g;
    Var loss = objective_.loss
                   ? objective_.loss(g, b)
                   : cross_entropy(model_logits(g, model_, b.inputs, opts_.seq_len, objective_.graph_options), b.targets);
    loss_sum += loss->v()[0];
    g.backward(opts_.grad_accum == 1 ? loss : scale(loss, 1.0f / float(opts_.grad_accum)));
  }
  StepStats s;
  s.grad_norm = clip_grad_norm(params_, opts_.clip);
  s.lr = schedule_.at(state_.step);
  opt_.step(s.lr);
  ++state_.step;
  if (objective_.after_update) objective_.after_update(state_.step);
  state_.tokens_seen += opts_.tokens_per_step();
  state_.sampler_counter = sampler_.counter();
  s.step = state_.step;
  s.tokens_seen = state_.tokens_seen;
  s.loss = loss_sum / double(opts_.grad_accum);
  s.seconds = now_seconds() - t0;
  s.tokens_per_second = double(opts_.tokens_per_step()) / s.seconds;
  return s;
}

double Trainer::validate() {
  const auto batches = validation_batches(valid_, opts_.seq_len, opts_.batch, opts_.val_tokens);
  if (batches.empty()) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  int64_t n = 0;
  for (const Batch& b : batches) {
    Graph g;  // forward only: no backward() call, the graph is dropped
    Var loss = cross_entropy(model_logits(g, model_, b.inputs, opts_.seq_len, objective_.graph_options), b.targets);
    sum += double(loss->v()[0]) * double(b.targets.size());
    n += int64_t(b.targets.size());
  }
  return sum / double(n);
}

void Trainer::run(int64_t until_step, const std::function<void(const StepStats&)>& on_step,
                  const std::function<void(int64_t, double)>& on_val) {
  const int64_t end = std::min(until_step < 0 ? opts_.steps : until_step, opts_.steps);
  const std::string ckpt = checkpoint_path();
  while (state_.step < end) {
    const StepStats s = step();
    if (on_step) on_step(s);
    const bool last = state_.step == opts_.steps;
    if (on_val && !valid_.empty() && (last || (opts_.val_every > 0 && state_.step % opts_.val_every == 0)))
      on_val(state_.step, validate());
    if (!ckpt.empty() && !last && opts_.ckpt_every > 0 && state_.step % opts_.ckpt_every == 0) save_checkpoint(ckpt);
  }
  if (!ckpt.empty()) save_checkpoint(ckpt);
}

std::string Trainer::checkpoint_path() const {
  return opts_.ckpt_dir.empty() ? "" : (std::filesystem::path(opts_.ckpt_dir) / "last.ckpt").string();
}

void Trainer::save_checkpoint(const std::string& path) const {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  nlohmann::json h = {{"config", config_to_json(model_.cfg)},
                      {"options", trajectory()},
                      {"step", state_.step},
                      {"tokens_seen", state_.tokens_seen},
                      {"sampler_counter", state_.sampler_counter},
                      {"data_hash", data_hash_}};
  write_checkpoint(path, h, params_, const_cast<Optimizer&>(opt_));
}

nlohmann::json Trainer::trajectory() const {
  nlohmann::json t = trajectory_json(opts_);
  if (!objective_.trajectory.is_null()) t["objective"] = objective_.trajectory;
  return t;
}

void Trainer::restore(const std::string& path) {
  try {
    restore_checked(path);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": damaged checkpoint header (", e.what(), ")");
  }
}

void Trainer::restore_checked(const std::string& path) {
  const nlohmann::json h = read_checkpoint_header(path);
  SHRINK_CHECK(h.at("config") == config_to_json(model_.cfg), path, ": the checkpoint is of another model shape (",
               h.at("config").dump(), ")");
  const nlohmann::json mine = trajectory();
  // Checked before the per-key loop, which only walks the checkpoint's keys
  // and so would miss an AdamW checkpoint (no "optimizer") resumed with SGD.
  const std::string saved_opt = h.at("options").value("optimizer", "adamw");
  SHRINK_CHECK(saved_opt == opts_.optimizer, path, ": the checkpoint was trained with --optimizer ", saved_opt,
               ", this run has --optimizer ", opts_.optimizer, " (a resumed run keeps its optimizer)");
  SHRINK_CHECK(h.at("options").contains("objective") == mine.contains("objective"), path,
               ": the checkpoint is of another kind of run (train / distill / finetune)");
  for (const auto& [k, v] : h.at("options").items())
    SHRINK_CHECK(mine.contains(k) && mine[k] == v, path, ": the checkpoint was made with ", k, " = ", v.dump(),
                 ", this run has ", mine.contains(k) ? mine[k].dump() : "none",
                 " (a resumed run keeps its hyper-parameters)");
  SHRINK_CHECK(h.at("data_hash").get<uint64_t>() == data_hash_, path,
               ": the checkpoint was trained on other data (the token stream differs)");
  read_checkpoint(path, params_, opt_);
  state_.step = h.at("step");
  state_.tokens_seen = h.at("tokens_seen");
  state_.sampler_counter = h.at("sampler_counter");
  sampler_.set_counter(state_.sampler_counter);
}

}  // namespace shrink::train
