// Data and options shared by the training-loop tests (train_data_test,
// gpt2_graph_test, gradual_prune_test): a token stream a small model can
// learn, the short run their checkpoint/resume checks use, and the
// memorise-one-window run of must-show 5 (Llama and GPT-2 alike).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace shrink::train::fixtures {

// A learnable stream: mostly "next = (prev * 7 + 3) % vocab", with noise; starts at 1.
inline std::vector<int32_t> learnable_stream(int64_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  t[0] = 1;
  for (int64_t i = 1; i < n; ++i) t[i] = rng() % 8 == 0 ? int32_t(rng() % vocab) : (t[i - 1] * 7 + 3) % vocab;
  return t;
}

// 8 steps of 3 × 16 tokens, 2 micro-batches each, short warmup.
inline TrainOptions small_options(const std::string& ckpt_dir = "") {
  TrainOptions o;
  o.steps = 8, o.batch = 3, o.seq_len = 16, o.grad_accum = 2;
  o.lr = 3e-3, o.min_lr = 3e-4, o.warmup = 2, o.seed = 5;
  o.ckpt_dir = ckpt_dir;
  return o;
}

// 150 steps of 2 × 16 tokens at a constant lr 1e-2, no warmup or decay: with
// data of one window (16 + 1 tokens) every batch is that window.
inline TrainOptions overfit_options() {
  TrainOptions o;
  o.steps = 150, o.batch = 2, o.seq_len = 16, o.lr = 1e-2, o.min_lr = 1e-2, o.warmup = 0, o.weight_decay = 0;
  return o;
}

// Runs t to the end; the first and the last step's training loss.
struct FirstLastLoss {
  double first = 0, last = 0;
};
inline FirstLastLoss run_first_last_loss(Trainer& t) {
  FirstLastLoss r;
  t.run(-1, [&](const StepStats& s) { (s.step == 1 ? r.first : r.last) = s.loss; }, nullptr);
  return r;
}

}  // namespace shrink::train::fixtures
