// Distillation losses (train/losses.h, train/feature_losses.h): reverse KL,
// generalized JSD, the α-mixture with cross-entropy, hidden-state MSE with a
// projection — finite-difference gradients and closed-form values; block
// taps of llama_logits and student initialisation (train/student_init.h).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "grad_check.h"
#include "train/feature_losses.h"
#include "train/llama_graph.h"
#include "train/losses.h"
#include "train/student_init.h"

namespace shrink::train {
namespace {

using namespace test;

// Plain double references of one row's divergences (temperature 1).
std::vector<double> softmax_row(const float* z, int n) {
  double mx = z[0], s = 0;
  for (int i = 1; i < n; ++i) mx = std::max(mx, double(z[i]));
  std::vector<double> p(n);
  for (int i = 0; i < n; ++i) s += (p[i] = std::exp(z[i] - mx));
  for (double& v : p) v /= s;
  return p;
}
double kl(const std::vector<double>& p, const std::vector<double>& q) {
  double d = 0;
  for (size_t i = 0; i < p.size(); ++i) d += p[i] * std::log(p[i] / q[i]);
  return d;
}

TEST(DistillLoss, ReverseKlGradientsAndValue) {
  for (float T : {1.0f, 2.5f}) {
    std::vector<Parameter> ps{rand_param("student", {3, 6}, 19, -3, 3)};
    const Tensor teacher = random_tensor({3, 6}, 20, -3, 3);
    expect_grads_match(ps, [&](Graph& g, std::vector<Var>& l) {
      return reverse_kl_divergence(l[0], g.constant(teacher), T);
    });
  }
  Graph g;
  const Tensor s = random_tensor({1, 5}, 1, -2, 2), t = random_tensor({1, 5}, 2, -2, 2);
  const double ref = kl(softmax_row(s.f32(), 5), softmax_row(t.f32(), 5));  // KL(student ‖ teacher)
  EXPECT_NEAR(reverse_kl_divergence(g.constant(s), g.constant(t), 1.0f)->v()[0], ref, 1e-6);
  EXPECT_NEAR(reverse_kl_divergence(g.constant(t), g.constant(t), 3.0f)->v()[0], 0.0, 1e-7);
  Parameter trainable("p", random_tensor({1, 5}, 1));
  EXPECT_THROW(reverse_kl_divergence(g.constant(s), g.param(trainable), 1.0f), Error);
}

TEST(DistillLoss, GeneralizedJsdGradientsAndValue) {
  for (float beta : {0.1f, 0.5f, 0.9f})
    for (float T : {1.0f, 2.0f}) {
      std::vector<Parameter> ps{rand_param("student", {3, 7}, 21, -3, 3)};
      const Tensor teacher = random_tensor({3, 7}, 22, -3, 3);
      SCOPED_TRACE(beta);
      expect_grads_match(ps, [&](Graph& g, std::vector<Var>& l) {
        return generalized_jsd(l[0], g.constant(teacher), beta, T);
      });
    }
  // The value against its definition with P = teacher, Q = student.
  const float beta = 0.3f;
  Graph g;
  const Tensor s = random_tensor({1, 6}, 3, -2, 2), t = random_tensor({1, 6}, 4, -2, 2);
  const std::vector<double> q = softmax_row(s.f32(), 6), p = softmax_row(t.f32(), 6);
  std::vector<double> m(6);
  for (int i = 0; i < 6; ++i) m[i] = beta * p[i] + (1 - beta) * q[i];
  EXPECT_NEAR(generalized_jsd(g.constant(s), g.constant(t), beta, 1.0f)->v()[0], beta * kl(p, m) + (1 - beta) * kl(q, m),
              1e-6);
  EXPECT_THROW(generalized_jsd(g.constant(s), g.constant(t), 1.0f, 1.0f), Error);
}

TEST(DistillLoss, MixtureOfKdAndCrossEntropy) {
  const std::vector<int32_t> targets{1, kIgnoreTarget, 4};
  const Tensor teacher = random_tensor({3, 5}, 31, -2, 2);
  for (KdLoss kind : {KdLoss::ForwardKl, KdLoss::ReverseKl, KdLoss::Jsd}) {
    const DistillLossConfig cfg{kind, 2.0f, 0.7f, 0.5f};
    std::vector<Parameter> ps{rand_param("student", {3, 5}, 30, -2, 2)};
    expect_grads_match(ps, [&](Graph& g, std::vector<Var>& l) {
      return distillation_loss(l[0], g.constant(teacher), targets, cfg);
    });
    Graph g;
    Var s = g.param(ps[0]), t = g.constant(teacher);
    const float kd = kind == KdLoss::ForwardKl   ? kl_divergence(s, t, 2.0f)->v()[0]
                     : kind == KdLoss::ReverseKl ? reverse_kl_divergence(s, t, 2.0f)->v()[0]
                                                 : generalized_jsd(s, t, 0.5f, 2.0f)->v()[0];
    EXPECT_NEAR(distillation_loss(s, t, targets, cfg)->v()[0], 0.7f * kd + 0.3f * cross_entropy(s, targets)->v()[0],
                1e-5);
  }
}

TEST(DistillLoss, HiddenStateMseWithAndWithoutProjection) {
  std::vector<Parameter> ps{rand_param("h_s", {4, 5}, 40), rand_param("h_t", {4, 5}, 41)};
  expect_grads_match(ps, [](Graph&, std::vector<Var>& l) { return mse(l[0], l[1]); });
  // Widths 5 -> 7 through a learned W_h {7, 5} (TinyBERT): gradients to H_s and W_h.
  std::vector<Parameter> pp{rand_param("h_s", {4, 5}, 42), rand_param("w_h", {7, 5}, 43)};
  const Tensor teacher = random_tensor({4, 7}, 44);
  expect_grads_match(pp, [&](Graph& g, std::vector<Var>& l) {
    return hidden_state_mse(l[0], g.constant(teacher), l[1]);
  });
  Graph g;
  Var a = g.constant(random_tensor({2, 3}, 45));
  EXPECT_NEAR(mse(a, a)->v()[0], 0.0, 0);
  EXPECT_THROW(hidden_state_mse(a, g.constant(random_tensor({2, 4}, 46))), Error);  // widths differ, no W_h
  // The initial projection copies the overlap: a student of width 3 against its zero-padded self.
  Parameter w = make_hidden_projection("w_h", 3, 4);
  Tensor padded = Tensor::zeros(DType::F32, {2, 4});
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) padded.f32()[r * 4 + c] = a->v()[r * 3 + c];
  EXPECT_NEAR(hidden_state_mse(a, g.constant(padded), g.param(w))->v()[0], 0.0, 1e-12);
}

// relation(): scores and softmaxed rows against finite differences (GQA
// grouping, two sequences), and its probabilities equal what attention() mixes
// v with: relation(q, k) · v per head reproduces attention(q, k, v).
TEST(DistillLoss, RelationOpScoresAndProbabilities) {
  const int64_t seq = 4, hd = 3;
  for (bool softmax : {false, true}) {
    std::vector<Parameter> ps{rand_param("a", {2 * seq, 4 * hd}, 50), rand_param("b", {2 * seq, 2 * hd}, 51)};
    SCOPED_TRACE(softmax ? "softmax" : "scores");
    expect_grads_match(ps, [&](Graph&, std::vector<Var>& l) { return project(relation(l[0], l[1], 4, 2, hd, seq, softmax)); });
  }
  Graph g;
  Var q = g.constant(random_tensor({2 * seq, 4 * hd}, 52)), k = g.constant(random_tensor({2 * seq, 2 * hd}, 53)),
      v = g.constant(random_tensor({2 * seq, 2 * hd}, 54));
  Var p = relation(q, k, 4, 2, hd, seq, true), att = attention(q, k, v, 4, 2, hd, seq);
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t t = 0; t < 2 * seq; ++t)
      for (int64_t d = 0; d < hd; ++d) {
        const int64_t s0 = t / seq * seq;
        double mixed = 0;
        for (int64_t j = 0; j < seq; ++j) mixed += p->v()[(h * 2 * seq + t) * seq + j] * v->v()[(s0 + j) * 2 * hd + h / 2 * hd + d];
        ASSERT_NEAR(mixed, att->v()[t * 4 * hd + h * hd + d], 1e-5) << h << "," << t << "," << d;
      }
}

// MiniLM's losses: attention-distribution and value-relation KL, gradients through relation().
TEST(DistillLoss, RelationKlOfAttentionAndValueRelations) {
  const int64_t seq = 3, hd = 2;
  const Tensor tq = random_tensor({2 * seq, 2 * hd}, 60), tk = random_tensor({2 * seq, 2 * hd}, 61);
  std::vector<Parameter> ps{rand_param("q", {2 * seq, 2 * hd}, 62), rand_param("k", {2 * seq, 2 * hd}, 63)};
  expect_grads_match(ps, [&](Graph& g, std::vector<Var>& l) {
    Var teacher = relation(g.constant(tq), g.constant(tk), 2, 2, hd, seq, true);
    return relation_kl(relation(l[0], l[1], 2, 2, hd, seq, true), teacher);
  });
  // Value relation: relation(v, v) of the student against the teacher's.
  std::vector<Parameter> pv{rand_param("v", {2 * seq, 2 * hd}, 64)};
  expect_grads_match(pv, [&](Graph& g, std::vector<Var>& l) {
    return relation_kl(relation(l[0], l[0], 2, 2, hd, seq, true), relation(g.constant(tq), g.constant(tq), 2, 2, hd, seq, true));
  });
  Graph g;
  Var same = relation(g.constant(tq), g.constant(tk), 2, 2, hd, seq, true);
  EXPECT_NEAR(relation_kl(same, same)->v()[0], 0.0, 1e-7);
}

// llama_logits with taps returns the same logits as without, one tap per block,
// and the last block's output feeds the head: a feature loss on a tap has gradients.
TEST(DistillLoss, LlamaTapsExposeBlockOutputs) {
  TransformerParams model = TransformerParams::random(tiny_llama(false), 7, 0.5f);
  const int64_t seq = 5;
  const std::vector<int32_t> tokens = random_tokens(2 * seq, 11, 3);
  Graph g;
  Var plain = llama_logits(g, model, tokens, seq);
  std::vector<BlockTaps> taps;
  Var tapped = llama_logits(g, model, tokens, seq, GraphOptions{&taps});
  for (int64_t i = 0; i < plain->value.numel(); ++i) ASSERT_EQ(plain->v()[i], tapped->v()[i]);
  ASSERT_EQ(taps.size(), 2u);
  for (const BlockTaps& t : taps) {
    EXPECT_EQ(t.out->value.shape, (std::vector<int64_t>{2 * seq, 8}));
    EXPECT_EQ(t.q->cols(), 8);
    EXPECT_EQ(t.k->cols(), 4);  // one KV head of 4
    EXPECT_EQ(t.v->cols(), 4);
  }
  // Every parameter's gradient of a hidden-state loss on block 0 plus CE, by finite differences.
  std::vector<Parameter> ps;
  for (Parameter* p : model.all()) ps.push_back(*p);
  const Tensor target_hidden = random_tensor({2 * seq, 8}, 5);
  const std::vector<int32_t> next = random_tokens(2 * seq, 11, 4);
  expect_grads_match(
      ps,
      [&](Graph& gg, std::vector<Var>&) {
        std::vector<BlockTaps> tp;
        Var logits = llama_logits(gg, model, tokens, seq, GraphOptions{&tp});
        return add(cross_entropy(logits, next), hidden_state_mse(tp[0].out, gg.constant(target_hidden)));
      },
      Tolerance{1e-2f, 2e-2, 2e-3});
}

TEST(StudentInit, EveryKthLayerCopiesAndRenames) {
  ModelConfig c = tiny_llama(false);
  c.n_layers = 5;
  TransformerParams teacher = TransformerParams::random(c, 3, 0.3f);
  TransformerParams student = student_every_kth_layer(teacher, 2);  // layers 0, 2, 4
  ASSERT_EQ(student.blocks.size(), 3u);
  EXPECT_EQ(student.cfg.n_layers, 3);
  EXPECT_EQ(student.blocks[1].wq.name, "blk.1.attn_q.weight");
  for (int i = 0; i < 3; ++i) {
    const Tensor &s = student.blocks[i].w_down.value, &t = teacher.blocks[2 * i].w_down.value;
    for (int64_t j = 0; j < s.numel(); ++j) ASSERT_EQ(s.f32()[j], t.f32()[j]);
  }
  // A deep copy: training the student leaves the teacher alone.
  student.tok_embd.value.f32()[0] += 1.0f;
  student.blocks[0].wq.value.f32()[0] += 1.0f;
  EXPECT_NE(student.tok_embd.value.f32()[0], teacher.tok_embd.value.f32()[0]);
  EXPECT_NE(student.blocks[0].wq.value.f32()[0], teacher.blocks[0].wq.value.f32()[0]);
  // It runs, and a student of the teacher's own layers is the teacher.
  const std::vector<int32_t> tokens = random_tokens(6, 11, 1);
  Graph g;
  EXPECT_EQ(llama_logits(g, student, tokens, 6)->value.shape, (std::vector<int64_t>{6, 11}));
  TransformerParams same = student_from_layers(teacher, {0, 1, 2, 3, 4});
  Var a = llama_logits(g, teacher, tokens, 6), b = llama_logits(g, same, tokens, 6);
  for (int64_t i = 0; i < a->value.numel(); ++i) ASSERT_EQ(a->v()[i], b->v()[i]);
  EXPECT_THROW(student_from_layers(teacher, {2, 1}), Error);
  EXPECT_THROW(student_from_layers(teacher, {5}), Error);
}

}  // namespace
}  // namespace shrink::train
