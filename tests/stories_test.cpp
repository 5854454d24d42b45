// End-to-end checks on the real stories260K model against llama.cpp's figures
// (../shared/reference/README.md). Skipped when ../shared is absent.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/cpu.h"
#include "core/file.h"
#include "eval/perplexity.h"
#include "model/sampler.h"
#include "model/transformer.h"
#include "test_util.h"

namespace shrink {
namespace {

TEST(Stories260K, GreedyTextEqualsReference) {
  SHRINK_REQUIRE_ASSET(path, "models/stories260K/stories260K.bin");
  ModelFile f = load_model(path, test::with_tokenizer());
  Transformer m(f);
  std::vector<int32_t> ids = f.tokenizer->encode("Once upon a time", true);
  KVCache cache = m.new_cache(256);
  std::vector<float> logits(f.config.vocab_size);
  m.forward(ids.data(), int(ids.size()), cache, logits.data(), false);
  std::vector<int32_t> out = ids;
  for (int i = 0; i < 60; ++i) {
    const int32_t next = argmax(logits.data(), f.config.vocab_size);
    out.push_back(next);
    m.forward(&next, 1, cache, logits.data(), false);
  }
  const std::string text = f.tokenizer->decode(out);
  const std::string ref =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
      "big, red ball. She wanted to play with it, but it was too high.";
  EXPECT_EQ(text.substr(0, ref.size()), ref);
}

// llama-perplexity -c 256 on wiki.test.raw: 116.25 (20 chunks), 115.7021 (100 chunks).
TEST(Stories260K, PerplexityMatchesLlamaCpp) {
  SHRINK_REQUIRE_ASSET(path, "models/stories260K/stories260K.bin");
  SHRINK_REQUIRE_ASSET(text, "text/wikitext-2-raw/wiki.test.raw");
  ModelFile f = load_model(path, test::with_tokenizer());
  Transformer m(f);
  const std::vector<int32_t> tokens = f.tokenizer->encode(read_text_file(text), true);
  eval::PerplexityOptions o;
  o.n_ctx = 256;
  o.chunks = 100;
  const auto r = eval::perplexity(m, tokens, o);
  EXPECT_EQ(r.scored, 100 * 127);
  EXPECT_NEAR(r.ppl, 115.7021, 115.7021 * 1e-3);
  EXPECT_NEAR(r.ppl_err, 3.98805, 0.01);
  o.chunks = 20;
  EXPECT_NEAR(eval::perplexity(m, tokens, o).ppl, 116.25, 116.25 * 1e-3);
}

// KL-divergence of a model against itself is zero and top-1 agreement is 100%.
TEST(Stories260K, SelfKldIsZero) {
  SHRINK_REQUIRE_ASSET(path, "models/stories260K/stories260K.bin");
  ModelFile f = load_model(path, test::with_tokenizer());
  Transformer m(f), base(f);
  std::vector<int32_t> tokens = f.tokenizer->encode(std::string(3000, 'a') + " Once upon a time there was a dog.", true);
  eval::PerplexityOptions o;
  o.n_ctx = 64;
  o.chunks = 4;
  const auto r = eval::perplexity(m, tokens, o, &base);
  EXPECT_NEAR(r.kld, 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(r.top1, 1.0);
  EXPECT_NEAR(r.base_ppl, r.ppl, 1e-9);
}

}  // namespace
}  // namespace shrink
