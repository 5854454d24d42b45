// Autograd (src/train): every op's gradient against central finite
// differences, a composed 2-layer Llama, the losses, the optimizers, and the
// training graph's logits against Transformer's on stories260K.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <omp.h>
#include <random>

#include "core/error.h"
#include "grad_check.h"
#include "test_util.h"
#include "io/model_file.h"
#include "model/transformer.h"
#include "train/llama_graph.h"
#include "train/losses.h"
#include "train/ops.h"
#include "train/optim.h"

namespace shrink::train {
namespace {

using namespace test;  // grad_check.h: random_tensor, project, expect_grads_match, ...

TEST(Autograd, LinearWithAndWithoutBias) {
  for (int64_t n : {1, 5}) {
    std::vector<Parameter> ps{rand_param("x", {n, 7}, 1), rand_param("w", {3, 7}, 2), rand_param("b", {3}, 3)};
    expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(linear(l[0], l[1], l[2])); });
    expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(linear(l[0], l[1])); });
  }
}

TEST(Autograd, LinearMatchesPlainProduct) {
  Graph g;
  Var x = g.constant(random_tensor({3, 5}, 1)), w = g.constant(random_tensor({4, 5}, 2));
  Var y = linear(x, w);
  for (int i = 0; i < 3; ++i)
    for (int o = 0; o < 4; ++o) {
      float ref = 0;
      for (int k = 0; k < 5; ++k) ref += x->v()[i * 5 + k] * w->v()[o * 5 + k];
      EXPECT_NEAR(y->v()[i * 4 + o], ref, 1e-5);
    }
}

TEST(Autograd, AddMulScaleAndReuse) {
  std::vector<Parameter> ps{rand_param("a", {3, 5}, 4), rand_param("b", {3, 5}, 5)};
  expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(add(l[0], l[1])); });
  expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(mul(l[0], l[1])); });
  // A node used twice (a·a + 3a) gathers both uses' gradients.
  expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(add(mul(l[0], l[0]), scale(l[0], 3.0f))); });
}

// GPT-2's q, k, v out of the fused projection: two overlapping slices of one input add up.
TEST(Autograd, ColumnsSliceAndOverlap) {
  std::vector<Parameter> ps{rand_param("x", {5, 9}, 4)};
  expect_grads_match(ps, [](Graph&, std::vector<Var>& l) {
    return add(project(columns(l[0], 2, 4), 1), project(columns(l[0], 5, 4), 2));
  });
  Graph g;
  Parameter x = rand_param("x", {3, 9}, 5);
  Var y = columns(g.param(x), 6, 3);
  EXPECT_EQ(y->value.shape, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(y->v()[4], x.value.f32()[9 + 7]);
  EXPECT_THROW(columns(g.param(x), 7, 3), Error);
}

TEST(Autograd, EmbeddingScatterAddsRepeatedTokens) {
  std::vector<Parameter> ps{rand_param("table", {6, 5}, 6)};
  const std::vector<int32_t> tokens{1, 4, 1, 0, 5, 1};
  expect_grads_match(ps, [&](Graph&, std::vector<Var>& l) { return project(embedding(l[0], tokens)); });
  Graph g;
  EXPECT_THROW(embedding(g.param(ps[0]), {6}), Error);
}

TEST(Autograd, RmsNorm) {
  for (int64_t d : {1, 7, 16}) {
    std::vector<Parameter> ps{rand_param("x", {3, d}, 7), rand_param("w", {d}, 8, 0.5f, 1.5f)};
    expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(rmsnorm(l[0], l[1], 1e-5f)); });
  }
}

TEST(Autograd, LayerNorm) {
  // d = 2 is left out: its normalised row is ±1 whatever x, a step that central differences cannot follow.
  for (int64_t d : {3, 9}) {
    std::vector<Parameter> ps{rand_param("x", {4, d}, 9), rand_param("w", {d}, 10, 0.5f, 1.5f),
                              rand_param("b", {d}, 11)};
    expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(layernorm(l[0], l[1], l[2], 1e-5f)); });
  }
}

TEST(Autograd, RopeBothConventions) {
  const std::vector<int32_t> pos{0, 7, 2};
  for (bool interleaved : {true, false})
    for (float sc : {1.0f, 2.0f}) {
      std::vector<Parameter> ps{rand_param("x", {3, 3 * 4}, 12)};
      expect_grads_match(ps, [&](Graph&, std::vector<Var>& l) {
        return project(rope(l[0], 3, 4, pos, 10000.0f, sc, interleaved));
      });
    }
}

TEST(Autograd, Activations) {
  std::vector<Parameter> ps{rand_param("x", {3, 7}, 13, -3.0f, 3.0f), rand_param("u", {3, 7}, 14)};
  expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(silu(l[0])); });
  expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(gelu(l[0])); });
  expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return project(swiglu(l[0], l[1])); });
  Graph g;  // swiglu's value is silu(gate)·up
  Var s = swiglu(g.param(ps[0]), g.param(ps[1])), ref = mul(silu(g.param(ps[0])), g.param(ps[1]));
  g.backward(sum(s));
  EXPECT_THROW(g.backward(sum(s)), Error);  // once per graph
  for (int i = 0; i < 21; ++i) EXPECT_NEAR(s->v()[i], ref->v()[i], 1e-6);
}

struct AttnCase {
  int64_t heads, kv_heads, head_dim, seq_len, n_seqs;
};

TEST(Autograd, CausalAttentionGqa) {
  // GQA, MQA, plain MHA, one-token sequences, and a sequence long enough for
  // the GEMM paths of the forward kernel and of the backward (>= 8 tokens).
  for (AttnCase c : {AttnCase{4, 2, 4, 5, 2}, AttnCase{3, 1, 2, 1, 3}, AttnCase{2, 2, 6, 7, 1},
                     AttnCase{2, 1, 4, 9, 1}, AttnCase{4, 2, 3, 11, 2}}) {
    const int64_t n = c.seq_len * c.n_seqs;
    std::vector<Parameter> ps{rand_param("q", {n, c.heads * c.head_dim}, 15, -2, 2),
                              rand_param("k", {n, c.kv_heads * c.head_dim}, 16, -2, 2),
                              rand_param("v", {n, c.kv_heads * c.head_dim}, 17)};
    SCOPED_TRACE(testing::Message() << c.heads << "/" << c.kv_heads << " heads of " << c.head_dim << ", "
                                    << c.n_seqs << " x " << c.seq_len << " tokens");
    expect_grads_match(ps, [&](Graph&, std::vector<Var>& l) {
      return project(attention(l[0], l[1], l[2], c.heads, c.kv_heads, c.head_dim, c.seq_len));
    });
  }
}

TEST(Autograd, AttentionFirstTokenSeesOnlyItself) {
  Graph g;
  Var q = g.constant(random_tensor({3, 4}, 1)), k = g.constant(random_tensor({3, 4}, 2)),
      v = g.constant(random_tensor({3, 4}, 3));
  Var y = attention(q, k, v, 1, 1, 4, 3);
  for (int e = 0; e < 4; ++e) EXPECT_FLOAT_EQ(y->v()[e], v->v()[e]);
}

TEST(Autograd, CrossEntropy) {
  std::vector<Parameter> ps{rand_param("logits", {4, 7}, 18, -3, 3)};
  const std::vector<int32_t> targets{2, kIgnoreTarget, 6, 0};
  expect_grads_match(ps, [&](Graph&, std::vector<Var>& l) { return cross_entropy(l[0], targets); });
  Graph g;  // uniform logits: the loss is log(vocab)
  EXPECT_NEAR(cross_entropy(g.constant(Tensor::zeros(DType::F32, {2, 7})), {1, 3})->v()[0], std::log(7.0), 1e-6);
}

TEST(Autograd, KlDivergenceDistillation) {
  for (float T : {1.0f, 2.5f}) {
    std::vector<Parameter> ps{rand_param("student", {3, 6}, 19, -3, 3)};
    const Tensor teacher = random_tensor({3, 6}, 20, -3, 3);
    expect_grads_match(ps, [&](Graph& g, std::vector<Var>& l) {
      return kl_divergence(l[0], g.constant(teacher), T);
    });
  }
  Graph g;
  Var t = g.constant(random_tensor({2, 5}, 21));
  EXPECT_NEAR(kl_divergence(t, t, 2.0f)->v()[0], 0.0, 1e-7);
  Parameter trainable("p", random_tensor({2, 5}, 1));
  EXPECT_THROW(kl_divergence(t, g.param(trainable), 1.0f), Error);
}

// A 2-layer Llama (GQA 2/1 heads) built from the ops: every parameter's gradient
// of the cross-entropy against finite differences. The checker gets copies of
// the model's Parameters, which share their value and gradient tensors.
TEST(Autograd, TwoLayerLlamaMatchesFiniteDifferences) {
  for (bool tied : {false, true}) {
    TransformerParams model = TransformerParams::random(tiny_llama(tied), 7, 0.5f);
    const int64_t seq = 5;
    const std::vector<int32_t> tokens = random_tokens(2 * seq + 1, 11, 3);
    const std::vector<int32_t> in(tokens.begin(), tokens.end() - 1), target(tokens.begin() + 1, tokens.end());
    std::vector<Parameter> ps;
    for (Parameter* p : model.all()) ps.push_back(*p);  // shares the tensors
    auto build = [&](Graph& g, std::vector<Var>&) { return cross_entropy(llama_logits(g, model, in, seq), target); };
    SCOPED_TRACE(tied ? "tied embeddings" : "separate output head");
    // The leaves the checker makes are unused: llama_logits takes its own over the same tensors.
    expect_grads_match(ps, build, Tolerance{1e-2f, 2e-2, 2e-3});
  }
}

// Gradients of a batch equal the mean of its micro-batches' (accumulation).
TEST(Autograd, GradientAccumulationEqualsTheWholeBatch) {
  TransformerParams model = TransformerParams::random(tiny_llama(false), 5, 0.3f);
  const int64_t seq = 4;
  const std::vector<int32_t> in = random_tokens(2 * seq, 11, 1), target = random_tokens(2 * seq, 11, 2);
  auto run = [&](int64_t from, int64_t count, float weight) {
    Graph g;
    const std::vector<int32_t> i(in.begin() + from, in.begin() + from + count),
        t(target.begin() + from, target.begin() + from + count);
    g.backward(scale(cross_entropy(llama_logits(g, model, i, seq), t), weight));
  };
  zero_grad(model.all());
  run(0, 2 * seq, 1.0f);
  std::vector<std::vector<float>> whole;
  for (Parameter* p : model.all()) whole.emplace_back(p->grad.f32(), p->grad.f32() + p->numel());
  zero_grad(model.all());
  run(0, seq, 0.5f);
  run(seq, seq, 0.5f);
  auto params = model.all();
  for (size_t k = 0; k < params.size(); ++k)
    for (int64_t i = 0; i < params[k]->numel(); ++i)
      EXPECT_NEAR(params[k]->grad.f32()[i], whole[k][i], 1e-6 + 1e-4 * std::abs(whole[k][i])) << params[k]->name;
}

TEST(Optim, AdamWFirstStepsByHand) {
  Parameter p("w", Tensor::alloc(DType::F32, {2}));
  p.value.f32()[0] = 1.0f;
  p.value.f32()[1] = -2.0f;
  AdamW opt({&p}, AdamWConfig{0.9, 0.999, 1e-8, 0.01});
  const float grads[2][2] = {{0.5f, -0.1f}, {-0.25f, 0.3f}};
  // Values computed by hand (in double) from Loshchilov & Hutter's Algorithm 2 with bias correction.
  const double expect[2][2] = {{0.899000002, -1.898000010}, {0.8714672987, -1.9455209911}};
  for (int s = 0; s < 2; ++s) {
    p.grad.f32()[0] = grads[s][0];
    p.grad.f32()[1] = grads[s][1];
    opt.step(0.1);
    EXPECT_NEAR(p.value.f32()[0], expect[s][0], 2e-6);
    EXPECT_NEAR(p.value.f32()[1], expect[s][1], 2e-6);
  }
  // No decay where Parameter::decay is false: a zero gradient leaves the value.
  Parameter norm("n", Tensor::alloc(DType::F32, {1}), false);
  norm.value.f32()[0] = 1.0f;
  AdamW opt2({&norm});
  opt2.step(0.1);
  EXPECT_EQ(norm.value.f32()[0], 1.0f);
}

TEST(Optim, SgdMomentum) {
  Parameter p("w", Tensor::alloc(DType::F32, {1}));
  p.value.f32()[0] = 1.0f;
  p.grad.f32()[0] = 0.5f;
  Sgd opt({&p}, SgdConfig{0.9, 0.0});
  opt.step(0.1);
  EXPECT_NEAR(p.value.f32()[0], 0.95, 1e-7);   // b = 0.5
  opt.step(0.1);
  EXPECT_NEAR(p.value.f32()[0], 0.855, 1e-7);  // b = 0.9·0.5 + 0.5
}

TEST(Optim, WarmupCosineSchedule) {
  const LrSchedule s{1e-3, 1e-4, 10, 110};
  EXPECT_NEAR(s.at(0), 1e-4, 1e-12);
  EXPECT_NEAR(s.at(9), 1e-3, 1e-12);
  EXPECT_NEAR(s.at(10), 1e-3, 1e-12);
  EXPECT_NEAR(s.at(60), 5.5e-4, 1e-12);
  EXPECT_NEAR(s.at(110), 1e-4, 1e-12);
  EXPECT_NEAR(s.at(500), 1e-4, 1e-12);
  for (int64_t t = 10; t < 110; ++t) EXPECT_LE(s.at(t + 1), s.at(t));
}

TEST(Optim, GlobalNormClipping) {
  Parameter a("a", Tensor::alloc(DType::F32, {1})), b("b", Tensor::alloc(DType::F32, {1}));
  a.grad.f32()[0] = 3.0f;
  b.grad.f32()[0] = 4.0f;
  EXPECT_NEAR(clip_grad_norm({&a, &b}, 10.0), 5.0, 1e-9);  // under the limit: untouched
  EXPECT_EQ(a.grad.f32()[0], 3.0f);
  EXPECT_NEAR(clip_grad_norm({&a, &b}, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(a.grad.f32()[0], 0.6f, 1e-7);
  EXPECT_NEAR(b.grad.f32()[0], 0.8f, 1e-7);
}

// Trains the tiny Llama on one fixed batch; returns the loss of every step.
std::vector<float> train_tiny(uint64_t seed, int steps, double* ms_per_step = nullptr) {
  OneThread one;  // a model this small only pays thread start-ups (and the figure is steadier)
  ModelConfig c = tiny_llama(false);
  c.dim = 32;
  c.hidden_dim = 64;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 37;
  c.validate("tiny train llama");
  TransformerParams model = TransformerParams::random(c, seed);
  const int64_t seq = 16, batch = 4;
  const std::vector<int32_t> data = random_tokens(batch * seq + 1, c.vocab_size, seed + 1);
  const std::vector<int32_t> in(data.begin(), data.end() - 1), target(data.begin() + 1, data.end());
  AdamW opt(model.all(), AdamWConfig{0.9, 0.95, 1e-8, 0.1});
  const LrSchedule lr{3e-2, 3e-3, 5, steps};
  std::vector<float> losses;
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) {
    zero_grad(model.all());
    Graph g;
    Var loss = cross_entropy(llama_logits(g, model, in, seq), target);
    g.backward(loss);
    clip_grad_norm(model.all(), 1.0);
    opt.step(lr.at(s));
    losses.push_back(loss->v()[0]);
  }
  const auto t1 = std::chrono::steady_clock::now();
  if (ms_per_step) *ms_per_step = std::chrono::duration<double, std::milli>(t1 - t0).count() / steps;
  return losses;
}

TEST(Optim, TinyLlamaLossGoesDownOnAFixedBatch) {
  double ms = 0;
  const std::vector<float> losses = train_tiny(11, 60, &ms);
  std::printf("tiny llama (4 x 16 tokens, %d steps): loss %.3f -> %.3f, %.2f ms/step\n", int(losses.size()),
              losses.front(), losses.back(), ms);
  EXPECT_NEAR(losses.front(), std::log(37.0), 0.1);  // near-uniform predictions at init
  EXPECT_LT(losses.back(), 0.5f * losses.front());
}

TEST(Optim, SameSeedSameLossesBitForBit) {
  const std::vector<float> a = train_tiny(3, 8), b = train_tiny(3, 8), c = train_tiny(4, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// The training graph and Transformer::forward give the same logits on a real model.
TEST(Autograd, LlamaGraphMatchesInferenceLogitsOnStories260K) {
  SHRINK_REQUIRE_ASSET(path, "models/stories260K/stories260K.bin");
  const ModelFile m = load_model(path);
  Transformer model(m);
  const int n = 24;
  const std::vector<int32_t> tokens = random_tokens(n, m.config.vocab_size, 9);
  KVCache cache = model.new_cache(n);
  std::vector<float> ref(size_t(n) * m.config.vocab_size);
  model.forward(tokens.data(), n, cache, ref.data(), true);
  TransformerParams params = TransformerParams::from_model_file(m);
  Graph g;
  Var logits = llama_logits(g, params, tokens, n);
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, double(std::abs(logits->v()[i] - ref[i])));
  std::printf("stories260K: training-graph vs inference logits, max |diff| %.3g over %d tokens\n", worst, n);
  EXPECT_LT(worst, 1e-4);

  // The step time of the real model: forward + backward + AdamW over 4 x 64 tokens.
  const int64_t seq = 64, batch = 4;
  const std::vector<int32_t> data = random_tokens(batch * seq + 1, m.config.vocab_size, 10);
  const std::vector<int32_t> in(data.begin(), data.end() - 1), target(data.begin() + 1, data.end());
  AdamW opt(params.all());
  double best_ms = 1e9;
  for (int s = 0; s < 3; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    zero_grad(params.all());
    Graph step;
    step.backward(cross_entropy(llama_logits(step, params, in, seq), target));
    opt.step(1e-4);
    best_ms = std::min(best_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("stories260K training step (%lld x %lld tokens): %.1f ms (best of 3)\n", (long long)batch,
              (long long)seq, best_ms);
}

}  // namespace
}  // namespace shrink::train
