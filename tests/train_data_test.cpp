// The training data loader, checkpoints and the training loop (src/train/
// token_data.h, checkpoint.h, trainer.h): cache reuse, split, deterministic
// windows, checkpoint round trip, resume == uninterrupted (bit-identical),
// and a one-layer model overfitting one batch. No ../shared needed: the
// tokenizer is the synthetic byte-fallback vocabulary of `shrink init`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <zlib.h>

#include "core/cpu.h"
#include "core/error.h"
#include "core/file.h"
#include "model/random_init.h"
#include "test_util.h"
#include "train_fixtures.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace shrink::train {
namespace {

ModelConfig tiny_config(int layers = 2) {
  ModelConfig c;
  c.dim = 32, c.hidden_dim = 48, c.n_layers = layers, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 64;
  c.max_seq_len = 64;
  c.validate("test");
  return c;
}

std::shared_ptr<Tokenizer> synthetic_tokenizer() {
  ModelConfig c = preset_config("tiny");
  return random_model(c, DType::F32, 1).tokenizer;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_text_file_raw(const std::string& path) {  // the bytes, never decompressed
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

using fixtures::small_options;
std::vector<int32_t> random_tokens(int64_t n, int vocab, uint64_t seed) { return fixtures::learnable_stream(n, vocab, seed); }

std::vector<std::vector<float>> snapshot(TransformerParams& p) {
  std::vector<std::vector<float>> out;
  for (Parameter* q : p.all()) out.emplace_back(q->value.f32(), q->value.f32() + q->numel());
  return out;
}

TEST(TrainData, TokenizesOnceThenReadsTheCache) {
  const std::string dir = test::temp_dir("train_cache");
  auto tok = synthetic_tokenizer();
  const std::string text = "a quick brown fox jumps over the lazy dog\nand again\n";
  write_file(dir + "/t.txt", text);
  TokenFile a = tokenize_file(dir + "/t.txt", *tok, dir + "/cache");
  EXPECT_FALSE(a.from_cache);
  EXPECT_EQ(a.tokens, tok->encode(text, true));
  EXPECT_TRUE(std::filesystem::exists(a.cache_path));
  TokenFile b = tokenize_file(dir + "/t.txt", *tok, dir + "/cache");
  EXPECT_TRUE(b.from_cache);
  EXPECT_EQ(b.tokens, a.tokens);
  // Another text (size and mtime change) is another key: re-tokenized.
  write_file(dir + "/t.txt", text + "more\n");
  TokenFile c = tokenize_file(dir + "/t.txt", *tok, dir + "/cache");
  EXPECT_FALSE(c.from_cache);
  EXPECT_NE(c.key, a.key);
  EXPECT_EQ(c.tokens, tok->encode(text + "more\n", true));
  // No cache dir: nothing written, same ids.
  TokenFile d = tokenize_file(dir + "/t.txt", *tok, "");
  EXPECT_TRUE(d.cache_path.empty());
  EXPECT_EQ(d.tokens, c.tokens);
  EXPECT_THROW(tokenize_file(dir + "/missing.txt", *tok, ""), Error);
}

// Text inputs may be gzip-compressed (the shared Gutenberg train set is a .gz): the same
// tokens as the plain file, two concatenated members read whole, a damaged file refused.
TEST(TrainData, GzipTextReadsAsThePlainText) {
  const std::string dir = test::temp_dir("train_gz");
  auto tok = synthetic_tokenizer();
  std::string text;
  for (int i = 0; i < 3000; ++i) text += "line " + std::to_string(i) + " of the compressed text\n";
  write_file(dir + "/t.txt", text);
  const size_t half = text.size() / 2;
  for (const std::string& part : {text.substr(0, half), text.substr(half)}) {  // two gzip members, as `cat a.gz b.gz`
    gzFile f = gzopen((dir + "/t.txt.gz").c_str(), part.data() == text.data() ? "wb" : "ab");
    ASSERT_TRUE(f);
    ASSERT_EQ(gzwrite(f, part.data(), unsigned(part.size())), int(part.size()));
    gzclose(f);
  }
  EXPECT_EQ(read_text_file(dir + "/t.txt.gz"), text);
  EXPECT_EQ(tokenize_file(dir + "/t.txt.gz", *tok, dir + "/cache").tokens, tokenize_file(dir + "/t.txt", *tok, "").tokens);
  const std::string gz = read_text_file_raw(dir + "/t.txt.gz");
  write_file(dir + "/cut.txt.gz", gz.substr(0, gz.size() / 2));
  EXPECT_THROW(read_text_file(dir + "/cut.txt.gz"), Error);
  write_file(dir + "/bad.txt.gz", "this is not gzip at all, though the name says so");
  EXPECT_THROW(read_text_file(dir + "/bad.txt.gz"), Error);
}

TEST(TrainData, LargeFileIsChunkedAtLineEndsTheSameAtAnyThreadCount) {
  const std::string dir = test::temp_dir("train_chunks");
  auto tok = synthetic_tokenizer();
  std::string text;
  for (int i = 0; text.size() < (5u << 20) / 2; ++i) text += "line " + std::to_string(i) + " of some text\n";
  write_file(dir + "/t.txt", text);
  int calls = 0;
  int64_t last_bytes = 0;
  set_num_threads(1);
  TokenFile one = tokenize_file(dir + "/t.txt", *tok, "", [&](const TokenizeProgress& p) {
    ++calls;
    EXPECT_GT(p.bytes_done, last_bytes);
    last_bytes = p.bytes_done;
  });
  EXPECT_EQ(calls, 3);  // 2.5 MiB in ~1 MiB chunks
  EXPECT_EQ(last_bytes, int64_t(text.size()));
  set_num_threads(2);
  TokenFile two = tokenize_file(dir + "/t.txt", *tok, "");
  set_num_threads(0);
  EXPECT_EQ(one.tokens, two.tokens);
  EXPECT_EQ(one.tokens[0], tok->bos_id());
}

TEST(TrainData, SplitTailKeepsOrder) {
  std::vector<int32_t> t(100);
  for (int i = 0; i < 100; ++i) t[i] = i;
  TokenSplit s = split_tail(t, 0.1);
  ASSERT_EQ(s.train.size(), 90u);
  ASSERT_EQ(s.valid.size(), 10u);
  EXPECT_EQ(s.train.back(), 89);
  EXPECT_EQ(s.valid.front(), 90);
  EXPECT_EQ(split_tail(t, 0).valid.size(), 0u);
  EXPECT_THROW(split_tail(t, 1.0), Error);
}

TEST(TrainData, WindowsAreDeterministicAndResumable) {
  const std::vector<int32_t> t = random_tokens(1000, 50, 3);
  WindowSampler a(&t, 16, 42), b(&t, 16, 42), other(&t, 16, 43);
  const Batch a1 = a.next(4), a2 = a.next(4);
  EXPECT_EQ(a1.inputs, b.next(4).inputs);
  EXPECT_NE(a1.inputs, other.next(4).inputs);
  ASSERT_EQ(a1.inputs.size(), 64u);
  for (int i = 0; i < 4; ++i)  // targets are the inputs shifted by one
    for (int j = 0; j + 1 < 16; ++j) EXPECT_EQ(a1.targets[i * 16 + j], a1.inputs[i * 16 + j + 1]);
  WindowSampler c(&t, 16, 42);
  c.set_counter(a1.inputs.size() / 16);  // what a checkpoint after one batch stores
  EXPECT_EQ(c.next(4).inputs, a2.inputs);
  const std::vector<int32_t> short_data(16);
  EXPECT_THROW(WindowSampler(&short_data, 16, 1), Error);
}

TEST(TrainData, ValidationWindowsAreConsecutive) {
  std::vector<int32_t> t(100);
  for (int i = 0; i < 100; ++i) t[i] = i;
  auto v = validation_batches(t, 10, 4, 0);  // (100-1)/10 = 9 windows: batches of 4, 4, 1
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[2].inputs.size(), 10u);
  EXPECT_EQ(v[2].inputs[0], 80);
  EXPECT_EQ(v[2].targets.back(), 90);
  EXPECT_EQ(validation_batches(t, 10, 4, 25).size(), 1u);  // 2 windows
  EXPECT_TRUE(validation_batches(std::vector<int32_t>(10), 10, 4, 0).empty());
}

TEST(TrainCheckpoint, RoundTripRestoresWeightsAndOptimizer) {
  set_num_threads(1);
  const std::string dir = test::temp_dir("train_ckpt");
  const std::vector<int32_t> data = random_tokens(2000, 64, 1), valid = random_tokens(200, 64, 2);
  TransformerParams p = TransformerParams::random(tiny_config(), 1);
  Trainer t(p, data, valid, small_options(dir));
  for (int i = 0; i < 3; ++i) t.step();
  t.save_checkpoint(dir + "/c.ckpt");
  const nlohmann::json h = read_checkpoint_header(dir + "/c.ckpt");
  EXPECT_EQ(h.at("step"), 3);
  EXPECT_EQ(h.at("adam_steps"), 3);
  EXPECT_EQ(config_from_json(h.at("config")).dim, 32);
  TransformerParams q = TransformerParams::random(tiny_config(), 99);
  Trainer u(q, data, valid, small_options(dir));
  u.restore(dir + "/c.ckpt");
  EXPECT_EQ(snapshot(q), snapshot(p));
  EXPECT_EQ(u.state().step, 3);
  EXPECT_EQ(u.state().sampler_counter, t.state().sampler_counter);
  // The next step is the same step (AdamW moments and t restored too).
  t.step();
  u.step();
  EXPECT_EQ(snapshot(q), snapshot(p));

  TrainOptions other = small_options(dir);
  other.lr = 1e-3;
  TransformerParams r = TransformerParams::random(tiny_config(), 1);
  Trainer w(r, data, valid, other);
  EXPECT_THROW(w.restore(dir + "/c.ckpt"), Error);  // another trajectory
  TransformerParams s = TransformerParams::random(tiny_config(3), 1);
  Trainer x(s, data, valid, small_options(dir));
  EXPECT_THROW(x.restore(dir + "/c.ckpt"), Error);  // another shape
  const std::vector<int32_t> other_data = random_tokens(2000, 64, 7);
  TransformerParams y = TransformerParams::random(tiny_config(), 1);
  Trainer z(y, other_data, valid, small_options(dir));
  EXPECT_THROW(z.restore(dir + "/c.ckpt"), Error);  // other data
  // Truncated: a clean error.
  std::filesystem::resize_file(dir + "/c.ckpt", std::filesystem::file_size(dir + "/c.ckpt") - 10);
  EXPECT_THROW(u.restore(dir + "/c.ckpt"), Error);
  set_num_threads(0);
}

// Runs `base` K steps straight and K/2 + K/2 with a checkpoint between, and
// expects the same weights byte for byte.
void expect_resume_equals_uninterrupted(const TrainOptions& base, const std::string& dir_name) {
  set_num_threads(1);
  const std::string dir = test::temp_dir(dir_name);
  const std::vector<int32_t> data = random_tokens(3000, 64, 1), valid = random_tokens(300, 64, 2);
  TransformerParams whole = TransformerParams::random(tiny_config(), 1);
  Trainer a(whole, data, valid, base);
  a.run(-1, nullptr, nullptr);

  TrainOptions o = base;
  o.ckpt_dir = dir;
  o.ckpt_every = 4;
  {
    TransformerParams first = TransformerParams::random(tiny_config(), 1);
    Trainer b(first, data, valid, o);
    b.run(4, nullptr, nullptr);  // "killed" after the checkpoint of step 4
  }
  TransformerParams resumed = TransformerParams::random(tiny_config(), 1);
  Trainer c(resumed, data, valid, o);
  c.restore(c.checkpoint_path());
  EXPECT_EQ(c.state().step, 4);
  c.run(-1, nullptr, nullptr);
  set_num_threads(0);
  const auto x = snapshot(whole), y = snapshot(resumed);
  ASSERT_EQ(x.size(), y.size());
  for (size_t k = 0; k < x.size(); ++k)
    EXPECT_EQ(std::memcmp(x[k].data(), y[k].data(), x[k].size() * 4), 0) << "parameter " << k;
}

TrainOptions sgd_options(const std::string& ckpt_dir = "") {
  TrainOptions o = small_options(ckpt_dir);
  o.optimizer = "sgd", o.momentum = 0.9, o.lr = 0.05, o.min_lr = 5e-3, o.weight_decay = 1e-4;
  return o;
}

// Must-show 5 of issue 6: stopping after K/2 steps and resuming from the
// checkpoint gives the same weights, byte for byte, as running K steps.
TEST(TrainCheckpoint, ResumeEqualsUninterrupted) { expect_resume_equals_uninterrupted(small_options(), "train_resume"); }

// The same with SGD: its momentum buffers are in the checkpoint.
TEST(TrainCheckpoint, SgdResumeEqualsUninterrupted) {
  expect_resume_equals_uninterrupted(sgd_options(), "train_resume_sgd");
}

// A checkpoint resumes only with the optimizer that wrote it, either way; an
// unknown optimizer is refused up front.
TEST(TrainCheckpoint, ResumeWithAnotherOptimizerIsRefused) {
  set_num_threads(1);
  const std::string dir = test::temp_dir("train_ckpt_opt");
  const std::vector<int32_t> data = random_tokens(2000, 64, 1), valid = random_tokens(200, 64, 2);
  TransformerParams p = TransformerParams::random(tiny_config(), 1);
  Trainer adam(p, data, valid, small_options(dir));
  adam.step();
  adam.save_checkpoint(dir + "/adamw.ckpt");
  Trainer sgd(p, data, valid, sgd_options(dir));
  sgd.step();
  sgd.save_checkpoint(dir + "/sgd.ckpt");
  EXPECT_EQ(read_checkpoint_header(dir + "/sgd.ckpt").at("optimizer"), "sgd");
  EXPECT_FALSE(read_checkpoint_header(dir + "/sgd.ckpt").contains("adam_steps"));
  // AdamW runs keep the trajectory JSON they had before --optimizer existed.
  EXPECT_FALSE(read_checkpoint_header(dir + "/adamw.ckpt").at("options").contains("optimizer"));

  TransformerParams q = TransformerParams::random(tiny_config(), 2);
  Trainer adam2(q, data, valid, small_options(dir)), sgd2(q, data, valid, sgd_options(dir));
  EXPECT_NO_THROW(adam2.restore(dir + "/adamw.ckpt"));
  EXPECT_NO_THROW(sgd2.restore(dir + "/sgd.ckpt"));
  try {
    sgd2.restore(dir + "/adamw.ckpt");
    ADD_FAILURE() << "an AdamW checkpoint resumed with SGD";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--optimizer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(adam2.restore(dir + "/sgd.ckpt"), Error);
  TrainOptions other_momentum = sgd_options(dir);
  other_momentum.momentum = 0.5;
  Trainer sgd3(q, data, valid, other_momentum);
  EXPECT_THROW(sgd3.restore(dir + "/sgd.ckpt"), Error);
  set_num_threads(0);

  TrainOptions bad = small_options();
  bad.optimizer = "adam";
  EXPECT_THROW(bad.validate(), Error);
  bad.optimizer = "sgd", bad.momentum = 1.0;
  EXPECT_THROW(bad.validate(), Error);
}

// Must-show 5: a one-layer model memorises one batch (loss → ~0).
TEST(TrainLoop, OneLayerOverfitsATinyBatch) {
  const std::vector<int32_t> data = random_tokens(17, 64, 9);  // one window of 16 + 1: every batch is this one
  TransformerParams p = TransformerParams::random(tiny_config(1), 1);
  Trainer t(p, data, {}, fixtures::overfit_options());
  const auto [first, last] = fixtures::run_first_last_loss(t);
  EXPECT_NEAR(first, std::log(64.0), 0.3);
  EXPECT_LT(last, 0.05) << "first loss " << first;
  EXPECT_TRUE(std::isnan(t.validate()));  // no validation data
}

// The same memorisation with SGD + momentum (a larger lr: SGD's step is lr·b,
// not AdamW's normalised lr·m̂/sqrt(v̂)).
TEST(TrainLoop, SgdOverfitsATinyBatch) {
  const std::vector<int32_t> data = random_tokens(17, 64, 9);
  TransformerParams p = TransformerParams::random(tiny_config(1), 1);
  TrainOptions o;
  o.steps = 200, o.batch = 2, o.seq_len = 16, o.lr = 0.3, o.min_lr = 0.3, o.warmup = 0, o.weight_decay = 0;
  o.optimizer = "sgd", o.momentum = 0.9;
  Trainer t(p, data, {}, o);
  double first = 0, last = 0;
  t.run(-1, [&](const StepStats& s) { (s.step == 1 ? first : last) = s.loss; }, nullptr);
  EXPECT_NEAR(first, std::log(64.0), 0.3);
  EXPECT_LT(last, 0.1) << "first loss " << first;
}

}  // namespace
}  // namespace shrink::train
