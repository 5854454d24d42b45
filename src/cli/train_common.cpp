#include "cli/train_common.h"

#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/cpu.h"
#include "core/error.h"

namespace shrink::cli {

std::string fmt_num(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

namespace {

// The loss curve, one record per step (and per validation), as CSV or JSONL by extension.
class LossLog {
 public:
  LossLog(const std::string& path, bool append) : csv_(path.size() > 4 && path.substr(path.size() - 4) == ".csv") {
    if (path.empty()) return;
    const bool fresh = !append || !std::filesystem::exists(path);
    f_ = std::fopen(path.c_str(), fresh ? "w" : "a");
    SHRINK_CHECK(f_, path, ": cannot open the log file for writing");
    if (csv_ && fresh) std::fprintf(f_, "step,tokens,train_loss,val_loss,val_ppl,lr,grad_norm,tok_per_s\n");
  }
  ~LossLog() {
    if (f_) std::fclose(f_);
  }
  void step(const train::StepStats& s) {
    if (!f_) return;
    if (csv_)
      std::fprintf(f_, "%lld,%lld,%.6f,,,%.6g,%.4f,%.1f\n", (long long)s.step, (long long)s.tokens_seen, s.loss, s.lr,
                   s.grad_norm, s.tokens_per_second);
    else
      std::fprintf(f_, "%s\n", nlohmann::json{{"step", s.step}, {"tokens", s.tokens_seen}, {"train_loss", s.loss},
                                               {"lr", s.lr}, {"grad_norm", s.grad_norm},
                                               {"tok_per_s", s.tokens_per_second}}.dump().c_str());
    std::fflush(f_);
  }
  void val(int64_t step, int64_t tokens, double loss) {
    if (!f_) return;
    if (csv_)
      std::fprintf(f_, "%lld,%lld,,%.6f,%.4f,,,\n", (long long)step, (long long)tokens, loss, std::exp(loss));
    else
      std::fprintf(f_, "%s\n", nlohmann::json{{"step", step}, {"tokens", tokens}, {"val_loss", loss},
                                               {"val_ppl", std::exp(loss)}}.dump().c_str());
    std::fflush(f_);
  }

 private:
  bool csv_;
  FILE* f_ = nullptr;
};

void save_model(train::TransformerParams& p, std::shared_ptr<Tokenizer> tok, const std::string& out, DType dt) {
  ModelFile m = p.to_model_file(dt);
  m.tokenizer = std::move(tok);
  m.path = out;
  save_gguf_model(m, out);
}

// A run killed while writing a checkpoint leaves last.ckpt.tmp-PID beside the
// intact last.ckpt (core/file.h AtomicWriter); the directory is this run's, so clear them.
void remove_stale_temporaries(const std::string& dir) {
  if (dir.empty() || !std::filesystem::is_directory(dir)) return;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind("last.ckpt.tmp-", 0) == 0) std::filesystem::remove(e.path());
}

// Every step allocates and frees the same activations (tens of MB each). By
// default glibc serves blocks above its mmap threshold (≤ 32 MiB) with fresh
// mmaps and trims freed heap, so each step page-faults its activations in
// again (16% of a teacher-9M step was in the kernel's page-fault path).
// Keeping them in the heap measured 15–25% more tokens/s (docs/training.md).
void keep_freed_memory_for_reuse() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace

// Train and validation token streams: --val FILE, or the last --val-fraction of --data.
train::TokenSplit load_train_data(const TrainRunArgs& a, const Tokenizer& tok, const std::string& tag) {
  const std::string cache = a.no_cache ? "" : a.cache_dir;
  auto load = [&](const std::string& path) {
    const double t0 = now_seconds();
    train::TokenFile f = train::tokenize_file(path, tok, cache, [&](const train::TokenizeProgress& p) {
      progress_line(tag + ": tokenizing " + path + " " + fmt_num("%.0f%%", 100.0 * p.bytes_done / p.bytes_total) + ", " +
                    std::to_string(p.tokens) + " tokens");
    });
    std::fprintf(stderr, "%s: %s: %zu tokens (%s, %.1f s)\n", tag.c_str(), path.c_str(), f.tokens.size(),
                 f.from_cache ? ("cached in " + f.cache_path).c_str() : "tokenized", now_seconds() - t0);
    return std::move(f.tokens);
  };
  if (a.val.empty()) return train::split_tail(load(a.data), a.val_fraction);
  return {load(a.data), load(a.val)};
}

void add_train_run_options(CLI::App* cmd, TrainRunArgs& a) {
  cmd->add_option("--data", a.data, "Training text (UTF-8 plain text)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--val", a.val, "Validation text (default: the last --val-fraction of --data)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--val-fraction", a.val_fraction, "Share of --data held out for validation without --val")
      ->capture_default_str();
  cmd->add_option("--cache-dir", a.cache_dir, "Where tokenized data is cached")->capture_default_str();
  cmd->add_flag("--no-cache", a.no_cache, "Tokenize without reading or writing the cache");
  cmd->add_option("-o,--output", a.out, "Output model, FILE.gguf (tokenizer embedded)")->required();
  cmd->add_option("--dtype", a.dtype, "Output weight type: f32, f16, bf16 (training is f32)")->capture_default_str();
  auto& o = a.o;
  cmd->add_option("--steps", o.steps, "Optimizer steps")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Sequences per micro-batch")->capture_default_str();
  cmd->add_option("--seq-len", o.seq_len, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--grad-accum", o.grad_accum, "Micro-batches per step (tokens/step = batch*seq-len*grad-accum)")
      ->capture_default_str();
  cmd->add_option("--optimizer", o.optimizer,
                  "adamw, or sgd (with momentum, PyTorch form b = mu*b + g, w -= lr*b); SGD wants a larger --lr, "
                  "typically 1e-2..0.1 where AdamW takes ~1e-3")
      ->capture_default_str();
  cmd->add_option("--momentum", o.momentum, "SGD momentum mu (--optimizer sgd only)")->capture_default_str();
  cmd->add_option("--lr", o.lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", o.min_lr, "Learning rate at the end of the cosine decay")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "Linear warmup steps")->capture_default_str();
  cmd->add_option("--wd", o.weight_decay,
                  "Weight decay, not on norms: decoupled with AdamW; with SGD coupled L2 (wd*w added to the "
                  "gradient, so take ~1e-4)")
      ->capture_default_str();
  cmd->add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
  cmd->add_option("--clip", o.clip, "Clip the global gradient norm to this (0 = off)")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the initial weights and of the data windows")->capture_default_str();
  cmd->add_option("--val-every", o.val_every, "Validate every N steps (0 = only at the end)")->capture_default_str();
  cmd->add_option("--val-tokens", o.val_tokens, "Validation tokens scored (0 = all)")->capture_default_str();
  cmd->add_option("--ckpt-dir", o.ckpt_dir, "Directory of the checkpoint (last.ckpt, replaced atomically)");
  cmd->add_option("--ckpt-every", o.ckpt_every, "Checkpoint every N steps (0 = only at the end)")
      ->capture_default_str();
  cmd->add_flag("--resume", a.resume, "Continue from --ckpt-dir/last.ckpt (same command otherwise)");
  cmd->add_option("--log", a.log, "Loss curve: FILE.csv (CSV) or any other name (JSON lines)");
  cmd->add_option("-t,--threads", a.threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
}

void prepare_train_run(const TrainRunArgs& a, bool gguf_output) {
  SHRINK_CHECK(!gguf_output || is_gguf_path(a.out), "-o must name a .gguf file (got ", a.out, ")");
  const DType dt = parse_dtype(a.dtype);
  SHRINK_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, "--dtype must be f32, f16 or bf16");
  SHRINK_CHECK(!a.resume || !a.o.ckpt_dir.empty(), "--resume needs --ckpt-dir DIR (where the checkpoints are)");
  a.o.validate();
  set_num_threads(a.threads);
  keep_freed_memory_for_reuse();
}

void run_trainer(train::Trainer& trainer, const TrainRunArgs& a, const train::TokenSplit& data, const std::string& tag) {
  const std::string ckpt = trainer.checkpoint_path();
  remove_stale_temporaries(a.o.ckpt_dir);
  bool resumed = false;
  if (a.resume && std::filesystem::exists(ckpt)) {
    trainer.restore(ckpt);
    resumed = true;
    std::fprintf(stderr, "%s: resumed from %s at step %lld\n", tag.c_str(), ckpt.c_str(), (long long)trainer.state().step);
  } else if (a.resume) {
    std::fprintf(stderr, "%s: no checkpoint at %s: starting from step 0\n", tag.c_str(), ckpt.c_str());
  }
  LossLog log(a.log, resumed);
  auto on_val = [&](int64_t step, double loss) {
    log.val(step, trainer.state().tokens_seen, loss);
    progress_line(tag + ": step " + std::to_string(step) + " validation loss " + fmt_num("%.4f", loss) + " (ppl " +
                  fmt_num("%.2f", std::exp(loss)) + ")", true);
  };
  if (!resumed && a.o.val_every > 0 && !data.valid.empty()) on_val(0, trainer.validate());
  const double t0 = now_seconds();
  const int64_t step0 = trainer.state().step;
  trainer.run(-1, [&](const train::StepStats& st) {
    log.step(st);
    const double rate = double((st.step - step0) * a.o.tokens_per_step()) / (now_seconds() - t0);
    progress_line(tag + ": step " + std::to_string(st.step) + "/" + std::to_string(a.o.steps) + " loss " +
                  fmt_num("%.4f", st.loss) + " lr " + fmt_num("%.2e", st.lr) + " |g| " + fmt_num("%.2f", st.grad_norm) +
                  " " + fmt_num("%.0f", rate) + " tok/s, ETA " +
                  fmt_num("%.0f", (a.o.steps - st.step) * a.o.tokens_per_step() / rate) + " s", st.step == a.o.steps);
  }, on_val);
  std::fprintf(stderr, "%s: %lld steps done (%lld tokens; this session %.1f s)\n", tag.c_str(),
               (long long)trainer.state().step, (long long)trainer.state().tokens_seen, now_seconds() - t0);
}

void save_trained_model(train::TransformerParams& p, std::shared_ptr<Tokenizer> tok, const TrainRunArgs& a) {
  save_model(p, std::move(tok), a.out, parse_dtype(a.dtype));
  std::fprintf(stderr, "wrote %s\n", a.out.c_str());
}

void add_gradual_prune_options(CLI::App* cmd, GradualPruneArgs& a) {
  const char* group = "Gradual pruning (Zhu & Gupta 2017 AGP; docs/pruning.md)";
  cmd->add_option("--prune-to", a.to, "Prune the block Linears by magnitude to this sparsity while training, e.g. 0.5")
      ->group(group);
  cmd->add_option("--prune-from", a.from, "Sparsity of the first pruning step (= --prune-to: one-shot at --prune-start, "
                  "then trained with the mask held)")->capture_default_str()->group(group);
  cmd->add_option("--prune-start", a.start, "Optimizer steps before the first pruning step")
      ->capture_default_str()->group(group);
  cmd->add_option("--prune-end", a.end, "Step at which --prune-to is reached (default: 3/4 of the way to --steps)")
      ->group(group);
  cmd->add_option("--prune-every", a.every, "Steps between pruning steps (the cubic ramp's Δt)")
      ->capture_default_str()->group(group);
}

void attach_gradual_pruning(const GradualPruneArgs& a, const train::TrainOptions& o, train::TransformerParams& model,
                            train::TrainObjective& objective) {
  if (a.to == 0) return;
  prune::GradualPruneOptions g;
  g.initial = a.from;
  g.target = a.to;
  g.start = a.start;
  g.every = a.every;
  SHRINK_CHECK(a.every >= 1, "--prune-every must be at least 1");
  g.end = a.end >= 0             ? a.end
          : a.from == a.to ? a.start
                           : a.start + (o.steps - a.start) * 3 / 4 / a.every * a.every;
  SHRINK_CHECK(g.end <= o.steps, "--prune-end (", g.end, ") is past --steps (", o.steps, ")");
  g.validate();
  std::vector<train::Parameter*> weights;  // the block Linears: linears() without the output head
  for (train::Parameter* p : model.linears())
    if (p != &model.output) weights.push_back(p);
  auto pruner = std::make_shared<prune::GradualPruner>(weights, g);
  objective.after_update = [pruner](int64_t step) { pruner->after_update(step); };
  objective.trajectory["gradual_prune"] = {
      {"from", g.initial}, {"to", g.target}, {"start", g.start}, {"end", g.end}, {"every", g.every}};
  std::fprintf(stderr, "gradual pruning: block Linears by magnitude, %.3g -> %.3g over steps %lld..%lld every %lld\n",
               g.initial, g.target, (long long)g.start, (long long)g.end, (long long)g.every);
}

}  // namespace shrink::cli
