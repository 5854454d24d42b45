// teacher-9M (a real model trained by an independent PyTorch implementation):
// the same weights from its llama2.c, Hugging Face and GGUF exports must give
// the PyTorch reference logits (max abs error 1e-4) and perplexities.
// Skipped when ../shared is absent.
#include <gtest/gtest.h>

#include <cmath>

#include "core/file.h"
#include "eval/perplexity.h"
#include "model/transformer.h"
#include "npy.h"
#include "test_util.h"

namespace shrink {
namespace {

// BOS + "Once upon a time" + the first two greedy tokens (README of teacher-9M).
const std::vector<int32_t> kIds = {1, 1459, 372, 681, 261, 587, 3915, 13};

void expect_reference_logits(const std::string& rel_model) {
  SHRINK_REQUIRE_ASSET(model_path, rel_model);
  SHRINK_REQUIRE_ASSET(ref_path, "models/teacher-9M/reference/ref_logits_once_upon_first8.npy");
  const test::NpyArray ref = test::read_npy_f32(ref_path);
  ASSERT_EQ(ref.shape, (std::vector<int64_t>{8, 4096}));
  ModelFile f = load_model(model_path);
  Transformer m(f);
  KVCache cache = m.new_cache(16);
  std::vector<float> logits(8 * 4096);
  m.forward(kIds.data(), 8, cache, logits.data(), true);
  float worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - ref.data[i]));
  EXPECT_LT(worst, 1e-4f) << rel_model;
  std::printf("%s: max |logit - PyTorch| = %.3g\n", rel_model.c_str(), worst);
}

TEST(Teacher9M, Llama2cLogitsMatchPyTorch) { expect_reference_logits("models/teacher-9M/llama2c/model.bin"); }
TEST(Teacher9M, HfLogitsMatchPyTorch) { expect_reference_logits("models/teacher-9M/hf"); }
TEST(Teacher9M, GgufLogitsMatchPyTorch) { expect_reference_logits("models/teacher-9M/gguf/model-f32.gguf"); }

TEST(Teacher9M, TokenizerGivesReferencePromptIds) {
  SHRINK_REQUIRE_ASSET(model_path, "models/teacher-9M/llama2c/model.bin");
  ModelFile f = load_model(model_path, test::with_tokenizer());
  EXPECT_EQ(f.tokenizer->encode("Once upon a time", true), std::vector<int32_t>(kIds.begin(), kIds.begin() + 6));
}

// Per-token NLL over every position of wiki.test.raw in 256-token windows,
// compared with PyTorch's on the first windows.
TEST(Teacher9M, AllPositionNllMatchesPyTorch) {
  SHRINK_REQUIRE_ASSET(model_path, "models/teacher-9M/llama2c/model.bin");
  SHRINK_REQUIRE_ASSET(text, "text/wikitext-2-raw/wiki.test.raw");
  SHRINK_REQUIRE_ASSET(ref_path, "models/teacher-9M/reference/ref_nll_wikitext2_test.npy");
  const test::NpyArray ref = test::read_npy_f32(ref_path);
  ModelFile f = load_model(model_path, test::with_tokenizer());
  Transformer m(f);
  const std::vector<int32_t> tokens = f.tokenizer->encode(read_text_file(text), true);
  ASSERT_EQ(tokens.size(), 469255u);  // llama.cpp's count (README)
  eval::PerplexityOptions o;
  o.n_ctx = 256;
  o.chunks = 8;
  o.all_positions = true;
  const auto r = eval::perplexity(m, tokens, o);
  ASSERT_EQ(r.nll_per_token.size(), 8u * 255);
  ASSERT_GE(ref.data.size(), r.nll_per_token.size());
  float worst = 0;
  for (size_t i = 0; i < r.nll_per_token.size(); ++i) worst = std::max(worst, std::fabs(r.nll_per_token[i] - ref.data[i]));
  EXPECT_LT(worst, 1e-3f);
  std::printf("max |NLL - PyTorch| over %zu tokens = %.3g\n", r.nll_per_token.size(), worst);
}

// llama-perplexity -c 256 --chunks 40 on gutenberg/valid.txt: 37.9103 (F32).
TEST(Teacher9M, PerplexityMatchesLlamaCpp) {
  SHRINK_REQUIRE_ASSET(model_path, "models/teacher-9M/llama2c/model.bin");
  SHRINK_REQUIRE_ASSET(text, "text/gutenberg/valid.txt");
  ModelFile f = load_model(model_path, test::with_tokenizer());
  Transformer m(f);
  const std::vector<int32_t> tokens = f.tokenizer->encode(read_text_file(text), true);
  EXPECT_EQ(tokens.size(), 1118223u);  // llama.cpp's count (README)
  eval::PerplexityOptions o;
  o.n_ctx = 256;
  o.chunks = 40;
  EXPECT_NEAR(eval::perplexity(m, tokens, o).ppl, 37.9103, 37.9103 * 1e-3);
}

}  // namespace
}  // namespace shrink
