// shrink train --config C.json|--preset NAME|--init MODEL --tokenizer TOK --data FILE -o OUT.gguf
// Trains a Llama-architecture model on a text file (src/train/trainer.h) and
// writes it as GGUF with its tokenizer, ready for eval/run/bench.
#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/cpu.h"
#include "core/error.h"
#include "model/random_init.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace shrink::cli {

namespace {

struct TrainArgs {
  std::string config, preset, init, tokenizer, data, val, cache_dir = train::default_token_cache_dir(), out, log;
  std::string dtype = "f32";
  double val_fraction = 0.01;
  bool resume = false, no_cache = false;
  int threads = 0;
  train::TrainOptions o;
};

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// The model to train (random from a config, or an existing model's weights)
// and its tokenizer.
struct Start {
  train::LlamaParams params;
  std::shared_ptr<Tokenizer> tokenizer;
};

Start make_start(const TrainArgs& a) {
  const int given = !a.config.empty() + !a.preset.empty() + !a.init.empty();
  SHRINK_CHECK(given == 1, "give exactly one of --config FILE, --preset NAME or --init MODEL");
  Start s;
  if (!a.init.empty()) {
    LoadOptions lo;
    lo.tokenizer_path = a.tokenizer;
    lo.require_tokenizer = true;
    ModelFile m = load_model(a.init, lo);
    s.params = train::LlamaParams::from_model_file(m);
    s.tokenizer = m.tokenizer;
    return s;
  }
  SHRINK_CHECK(!a.tokenizer.empty(), "--tokenizer FILE is required when training from scratch "
               "(a SentencePiece tokenizer.model, a llama2.c tokenizer.bin, a tokenizer.json or a .gguf)");
  ModelConfig c = a.config.empty() ? preset_config(a.preset) : config_from_json_file(a.config);
  s.tokenizer = load_tokenizer_file(a.tokenizer, c.vocab_size);
  SHRINK_CHECK(s.tokenizer->vocab_size() <= c.vocab_size, a.tokenizer, ": the tokenizer has ",
               s.tokenizer->vocab_size(), " tokens but the model's vocab_size is ", c.vocab_size);
  s.params = train::LlamaParams::random(c, a.o.seed);
  return s;
}

// Train and validation token streams: --val FILE, or the last --val-fraction of --data.
train::TokenSplit load_data(const TrainArgs& a, const Tokenizer& tok) {
  const std::string cache = a.no_cache ? "" : a.cache_dir;
  auto load = [&](const std::string& path) {
    const double t0 = now_seconds();
    train::TokenFile f = train::tokenize_file(path, tok, cache, [&](const train::TokenizeProgress& p) {
      progress_line("train: tokenizing " + path + " " + fmt("%.0f%%", 100.0 * p.bytes_done / p.bytes_total) + ", " +
                    std::to_string(p.tokens) + " tokens");
    });
    std::fprintf(stderr, "train: %s: %zu tokens (%s, %.1f s)\n", path.c_str(), f.tokens.size(),
                 f.from_cache ? ("cached in " + f.cache_path).c_str() : "tokenized", now_seconds() - t0);
    return std::move(f.tokens);
  };
  if (a.val.empty()) return train::split_tail(load(a.data), a.val_fraction);
  return {load(a.data), load(a.val)};
}

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

void save_model(const train::LlamaParams& p, std::shared_ptr<Tokenizer> tok, const std::string& out, DType dt) {
  ModelFile m;
  m.config = p.cfg;
  m.tokenizer = std::move(tok);
  m.format = "gguf";
  m.path = out;
  for (train::Parameter* q : const_cast<train::LlamaParams&>(p).all())
    m.tensors[q->name] = q->value.ndim() == 2 && dt != DType::F32 ? q->value.to(dt) : q->value;
  check_model_tensors(m);
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

void run_train(const TrainArgs& a) {
  SHRINK_CHECK(is_gguf_path(a.out), "-o must name a .gguf file (got ", a.out, ")");
  const DType dt = parse_dtype(a.dtype);
  SHRINK_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, "--dtype must be f32, f16 or bf16");
  SHRINK_CHECK(!a.resume || !a.o.ckpt_dir.empty(), "--resume needs --ckpt-dir DIR (where the checkpoints are)");
  a.o.validate();
  set_num_threads(a.threads);
  keep_freed_memory_for_reuse();
  Start s = make_start(a);
  const train::TokenSplit data = load_data(a, *s.tokenizer);
  std::fprintf(stderr, "train: %s, %.2f M parameters; %zu train / %zu validation tokens; %lld tokens per step\n",
               s.params.cfg.summary().c_str(), s.params.count() / 1e6, data.train.size(), data.valid.size(),
               (long long)a.o.tokens_per_step());
  train::Trainer trainer(s.params, data.train, data.valid, a.o);
  const std::string ckpt = trainer.checkpoint_path();
  remove_stale_temporaries(a.o.ckpt_dir);
  bool resumed = false;
  if (a.resume && std::filesystem::exists(ckpt)) {
    trainer.restore(ckpt);
    resumed = true;
    std::fprintf(stderr, "train: resumed from %s at step %lld\n", ckpt.c_str(), (long long)trainer.state().step);
  } else if (a.resume) {
    std::fprintf(stderr, "train: no checkpoint at %s: starting from step 0\n", ckpt.c_str());
  }
  LossLog log(a.log, resumed);
  auto on_val = [&](int64_t step, double loss) {
    log.val(step, trainer.state().tokens_seen, loss);
    progress_line("train: step " + std::to_string(step) + " validation loss " + fmt("%.4f", loss) + " (ppl " +
                  fmt("%.2f", std::exp(loss)) + ")", true);
  };
  if (!resumed && a.o.val_every > 0 && !data.valid.empty()) on_val(0, trainer.validate());
  const double t0 = now_seconds();
  const int64_t step0 = trainer.state().step;
  trainer.run(-1, [&](const train::StepStats& st) {
    log.step(st);
    const double rate = double((st.step - step0) * a.o.tokens_per_step()) / (now_seconds() - t0);
    progress_line("train: step " + std::to_string(st.step) + "/" + std::to_string(a.o.steps) + " loss " +
                  fmt("%.4f", st.loss) + " lr " + fmt("%.2e", st.lr) + " |g| " + fmt("%.2f", st.grad_norm) + " " +
                  fmt("%.0f", rate) + " tok/s, ETA " + fmt("%.0f", (a.o.steps - st.step) * a.o.tokens_per_step() / rate) +
                  " s", st.step == a.o.steps);
  }, on_val);
  save_model(s.params, s.tokenizer, a.out, dt);
  std::fprintf(stderr, "train: wrote %s after %lld steps (%lld tokens; this session %.1f s)\n", a.out.c_str(),
               (long long)trainer.state().step, (long long)trainer.state().tokens_seen, now_seconds() - t0);
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand(
      "train",
      "Train a Llama-architecture model on a text file (from scratch, or --init MODEL to continue), write GGUF.\n"
      "AdamW with linear warmup + cosine decay, global-norm clipping, gradient accumulation, f32 master weights;\n"
      "windows of --seq-len+1 tokens drawn at random (deterministic in --seed) from the tokenized --data\n"
      "(tokenized once, cached under --cache-dir). Checkpoints (--ckpt-dir) hold weights, AdamW state, step and\n"
      "data position: rerun the same command with --resume to continue a stopped run bit-identically.");
  // The last of a repeated option wins (a script can append overrides to a base command).
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--config", a->config, "Model shape as JSON (shrink fields or a Hugging Face config.json)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--preset", a->preset, "Model shape preset (see `shrink init --help`)");
  cmd->add_option("--init", a->init, "Start from this Llama model's weights (HF dir, .gguf, llama2.c .bin)");
  cmd->add_option("--tokenizer", a->tokenizer, "Tokenizer: tokenizer.model, tokenizer.bin, tokenizer.json or .gguf "
                  "(with --init: default the model's)");
  cmd->add_option("--data", a->data, "Training text (UTF-8 plain text)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--val", a->val, "Validation text (default: the last --val-fraction of --data)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--val-fraction", a->val_fraction, "Share of --data held out for validation without --val")
      ->capture_default_str();
  cmd->add_option("--cache-dir", a->cache_dir, "Where tokenized data is cached")->capture_default_str();
  cmd->add_flag("--no-cache", a->no_cache, "Tokenize without reading or writing the cache");
  cmd->add_option("-o,--output", a->out, "Output model, FILE.gguf (tokenizer embedded)")->required();
  cmd->add_option("--dtype", a->dtype, "Output weight type: f32, f16, bf16 (training is f32)")->capture_default_str();
  auto& o = a->o;
  cmd->add_option("--steps", o.steps, "Optimizer steps")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Sequences per micro-batch")->capture_default_str();
  cmd->add_option("--seq-len", o.seq_len, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--grad-accum", o.grad_accum, "Micro-batches per step (tokens/step = batch*seq-len*grad-accum)")
      ->capture_default_str();
  cmd->add_option("--lr", o.lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", o.min_lr, "Learning rate at the end of the cosine decay")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "Linear warmup steps")->capture_default_str();
  cmd->add_option("--wd", o.weight_decay, "AdamW decoupled weight decay (not on norms)")->capture_default_str();
  cmd->add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
  cmd->add_option("--clip", o.clip, "Clip the global gradient norm to this (0 = off)")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the initial weights and of the data windows")->capture_default_str();
  cmd->add_option("--val-every", o.val_every, "Validate every N steps (0 = only at the end)")->capture_default_str();
  cmd->add_option("--val-tokens", o.val_tokens, "Validation tokens scored (0 = all)")->capture_default_str();
  cmd->add_option("--ckpt-dir", o.ckpt_dir, "Directory of the checkpoint (last.ckpt, replaced atomically)");
  cmd->add_option("--ckpt-every", o.ckpt_every, "Checkpoint every N steps (0 = only at the end)")
      ->capture_default_str();
  cmd->add_flag("--resume", a->resume, "Continue from --ckpt-dir/last.ckpt (same command otherwise)");
  cmd->add_option("--log", a->log, "Loss curve: FILE.csv (CSV) or any other name (JSON lines)");
  cmd->add_option("-t,--threads", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([a] { run_train(*a); });
}

}  // namespace shrink::cli
