// Forward-pass tests that need no ../shared: KV-cache consistency, GQA,
// GPT-2, sampling, and the random-model presets.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "model/random_init.h"
#include "model/sampler.h"
#include "model/transformer.h"
#include "test_util.h"

namespace shrink {
namespace {

float max_abs_diff(const float* a, const float* b, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Prefilling n tokens at once must give the same logits as feeding them one
// by one through the KV cache (batched GEMM path vs GEMV path).
void expect_prefill_equals_decode(const ModelConfig& c, DType dt) {
  ModelFile f = random_model(c, dt, 7);
  Transformer m(f);
  const int n = 13, V = c.vocab_size;
  std::vector<int32_t> toks(n);
  for (int i = 0; i < n; ++i) toks[i] = (i * 37 + 1) % V;
  KVCache c1 = m.new_cache(32), c2 = m.new_cache(32);
  std::vector<float> all(size_t(n) * V), one(V);
  m.forward(toks.data(), n, c1, all.data(), true);
  for (int i = 0; i < n; ++i) {
    m.forward(&toks[i], 1, c2, one.data(), false);
    EXPECT_LT(max_abs_diff(one.data(), all.data() + int64_t(i) * V, V), 2e-4f) << "position " << i;
  }
  EXPECT_EQ(c1.len, n);
  EXPECT_EQ(c2.len, n);
}

TEST(Model, LlamaPrefillEqualsDecodeF32) { expect_prefill_equals_decode(preset_config("tiny"), DType::F32); }
TEST(Model, LlamaPrefillEqualsDecodeBF16) { expect_prefill_equals_decode(preset_config("tiny"), DType::BF16); }

TEST(Model, GPT2PrefillEqualsDecode) {
  ModelConfig c = preset_config("tiny");
  c.arch = Arch::GPT2;
  c.n_kv_heads = c.n_heads;
  c.tied_embeddings = true;
  expect_prefill_equals_decode(c, DType::F32);
}

TEST(Model, MultiQueryAttention) {
  ModelConfig c = preset_config("tiny");
  c.n_kv_heads = 1;
  expect_prefill_equals_decode(c, DType::F32);
}

TEST(Model, QkvBiasAndNeoxRope) {
  ModelConfig c = preset_config("tiny");
  c.qkv_bias = true;
  c.rope_style = RopeStyle::Neox;
  expect_prefill_equals_decode(c, DType::F32);
}

TEST(Model, ContextOverflowIsAnError) {
  ModelFile f = random_model(preset_config("tiny"), DType::F32, 1);
  Transformer m(f);
  KVCache c = m.new_cache(4);
  std::vector<int32_t> toks(5, 3);
  std::vector<float> logits(5 * 512);
  EXPECT_THROW(m.forward(toks.data(), 5, c, logits.data(), true), Error);
  int32_t bad = 100000;
  EXPECT_THROW(m.forward(&bad, 1, c, logits.data(), false), Error);
}

TEST(Model, ParameterCountMatchesTensors) {
  for (const char* p : {"tiny"}) {
    ModelFile f = random_model(preset_config(p), DType::F32, 1);
    int64_t n = 0;
    for (const auto& [_, t] : f.tensors) n += t.numel();
    EXPECT_EQ(n, f.config.parameter_count());
  }
  ModelConfig c = preset_config("tiny");
  c.arch = Arch::GPT2;
  c.n_kv_heads = c.n_heads;
  c.tied_embeddings = true;
  ModelFile f = random_model(c, DType::F32, 1);
  int64_t n = 0;
  for (const auto& [_, t] : f.tensors) n += t.numel();
  EXPECT_EQ(n, c.parameter_count());
}

TEST(Model, PresetsHaveTheAdvertisedShapes) {
  const ModelConfig a = preset_config("llama-500m");
  EXPECT_EQ(a.dim, 1536);
  EXPECT_EQ(a.hidden_dim, 4096);
  EXPECT_EQ(a.n_layers, 16);
  EXPECT_EQ(a.n_kv_heads, 12);
  const ModelConfig b = preset_config("tinyllama-1.1b");
  EXPECT_EQ(b.dim, 2048);
  EXPECT_EQ(b.n_kv_heads, 4);
  EXPECT_NEAR(b.parameter_count() / 1e9, 1.1, 0.05);
  EXPECT_THROW(preset_config("nope"), Error);
}

TEST(Sampler, GreedyIsArgmaxAndSeedIsReproducible) {
  std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f, 0.5f};
  Sampler g({});
  EXPECT_EQ(g.sample(logits.data(), 5), 1);
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 3;
  o.top_p = 0.9f;
  o.seed = 5;
  Sampler s1(o), s2(o);
  for (int i = 0; i < 50; ++i) {
    const int a = s1.sample(logits.data(), 5);
    EXPECT_EQ(a, s2.sample(logits.data(), 5));
    EXPECT_TRUE(a == 1 || a == 2 || a == 4) << a;  // top-3 only
  }
}

TEST(Sampler, TopKOneIsGreedy) {
  std::vector<float> logits = {0.1f, 2.0f, 3.0f, -1.0f};
  SamplerOptions o;
  o.temperature = 2.0f;
  o.top_k = 1;
  Sampler s(o);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(logits.data(), 4), 2);
}

}  // namespace
}  // namespace shrink
