// shrink train --config C.json|--preset NAME|--init MODEL --tokenizer TOK --data FILE -o OUT.gguf
// Trains a Llama- or GPT-2-architecture model on a text file (src/train/trainer.h) and
// writes it as GGUF with its tokenizer, ready for eval/run/bench.
#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/train_common.h"
#include "core/cpu.h"
#include "core/error.h"
#include "model/random_init.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace shrink::cli {

namespace {

struct TrainArgs {
  std::string config, preset, init, tokenizer;
  TrainRunArgs run;
  GradualPruneArgs prune;
};

// The model to train (random from a config, or an existing model's weights)
// and its tokenizer.
struct Start {
  train::TransformerParams params;
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
    s.params = train::TransformerParams::from_model_file(m);
    s.tokenizer = m.tokenizer;
    return s;
  }
  SHRINK_CHECK(!a.tokenizer.empty(), "--tokenizer FILE is required when training from scratch "
               "(a SentencePiece tokenizer.model, a llama2.c tokenizer.bin, a tokenizer.json or a .gguf)");
  ModelConfig c = a.config.empty() ? preset_config(a.preset) : config_from_json_file(a.config);
  s.tokenizer = load_tokenizer_file(a.tokenizer, c.vocab_size);
  SHRINK_CHECK(s.tokenizer->vocab_size() <= c.vocab_size, a.tokenizer, ": the tokenizer has ",
               s.tokenizer->vocab_size(), " tokens but the model's vocab_size is ", c.vocab_size);
  s.params = train::TransformerParams::random(c, a.run.o.seed);
  return s;
}

void run_train(const TrainArgs& a) {
  prepare_train_run(a.run);
  Start s = make_start(a);
  const train::TokenSplit data = load_train_data(a.run, *s.tokenizer, "train");
  std::fprintf(stderr, "train: %s, %.2f M parameters; %zu train / %zu validation tokens; %lld tokens per step\n",
               s.params.cfg.summary().c_str(), s.params.count() / 1e6, data.train.size(), data.valid.size(),
               (long long)a.run.o.tokens_per_step());
  train::TrainObjective objective;
  attach_gradual_pruning(a.prune, a.run.o, s.params, objective);
  train::Trainer trainer(s.params, data.train, data.valid, a.run.o, objective);
  run_trainer(trainer, a.run, data, "train");
  save_trained_model(s.params, s.tokenizer, a.run);
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand(
      "train",
      "Train a Llama- or GPT-2-architecture model on a text file (from scratch, or --init MODEL to continue), write\n"
      "GGUF (a GPT-2 config: \"arch\": \"gpt2\"; --seq-len up to its learned positions, max_seq_len).\n"
      "AdamW (or --optimizer sgd: SGD with momentum) with linear warmup + cosine decay, global-norm clipping,\n"
      "gradient accumulation, f32 master weights; windows of --seq-len+1 tokens drawn at random (deterministic\n"
      "in --seed) from the tokenized --data (tokenized once, cached under --cache-dir). Checkpoints (--ckpt-dir)\n"
      "hold weights, optimizer state, step and data position: rerun the same command with --resume to continue a\n"
      "stopped run bit-identically.");
  // The last of a repeated option wins (a script can append overrides to a base command).
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--config", a->config, "Model shape as JSON (shrink fields or a Hugging Face config.json)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--preset", a->preset, "Model shape preset (see `shrink init --help`)");
  cmd->add_option("--init", a->init, "Start from this Llama or GPT-2 model's weights (HF dir, .gguf, llama2.c .bin)");
  cmd->add_option("--tokenizer", a->tokenizer, "Tokenizer: tokenizer.model, tokenizer.bin, tokenizer.json or .gguf "
                  "(with --init: default the model's)");
  add_train_run_options(cmd, a->run);
  add_gradual_prune_options(cmd, a->prune);
  cmd->callback([a] { run_train(*a); });
}

}  // namespace shrink::cli
