// Fake quantization (train/fake_quant.h): the forward equals shrink's RTN
// group quantizer bit for bit, the STE and LSQ gradients (LSQ's step gradient
// against finite differences of its surrogate, round(·) held fixed), and a
// QAT-trained model exports to a GroupQuantWeight whose values are the
// fake-quant forward's, bit for bit.
#include <gtest/gtest.h>

#include <cmath>

#include "compress/quant/target.h"
#include "core/error.h"
#include "grad_check.h"
#include "model/group_weight.h"
#include "train/fake_quant.h"
#include "train/llama_graph.h"
#include "train/losses.h"
#include "train/optim.h"
#include "train/student_init.h"

namespace shrink::train {
namespace {

using namespace test;

void expect_bit_equal(const float* a, const float* b, int64_t n, const std::string& what) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i)
    if (a[i] != b[i] && ++bad <= 5) ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << b[i];
  EXPECT_EQ(bad, 0) << what;
}

TEST(FakeQuant, RtnForwardEqualsTheGroupQuantizer) {
  // 72 columns: groups of 32 leave a partial last group of 8; group 0 is one step per row.
  for (int bits : {2, 3, 4, 8})
    for (int64_t group : {32, 64, 0}) {
      const quant::QuantSpec spec = fake_quant_spec(bits, group);
      const Tensor w = random_tensor({5, 72}, uint64_t(bits * 100 + group), -0.2f, 0.3f);
      Graph g;
      Var fq = fake_quant_rtn(g.constant(w), spec);
      const auto ref = quant::quantize_matrix(quant::QuantTarget::parse(spec.name()), w, nullptr);
      const Tensor deq = ref->to_dense_f32();
      SCOPED_TRACE(spec.name());
      expect_bit_equal(fq->v(), deq.f32(), w.numel(), "RTN fake quant vs quantize_matrix");
      const auto* gq = dynamic_cast<const GroupQuantWeight*>(ref.get());
      ASSERT_NE(gq, nullptr);
      const Tensor steps = rtn_steps(w, spec);
      expect_bit_equal(steps.f32(), gq->scales().data(), steps.numel(), "steps");
      // LSQ at its initial (RTN) steps is the same forward.
      Var lsq = fake_quant_lsq(g.constant(w), g.constant(steps), spec);
      expect_bit_equal(lsq->v(), fq->v(), w.numel(), "LSQ at RTN steps");
    }
  EXPECT_THROW(fake_quant_spec(1, 32), Error);
  EXPECT_THROW(fake_quant_spec(4, 4), Error);
}

TEST(FakeQuant, RtnStraightThroughGradientIsTheIdentity) {
  Parameter w("w", random_tensor({3, 40}, 1));
  Graph g;
  Var fq = fake_quant_rtn(g.param(w), fake_quant_spec(3, 32));
  const Tensor r = random_tensor(fq->value.shape, 2);
  g.backward(sum(mul(fq, g.constant(r))));
  expect_bit_equal(w.grad.f32(), r.f32(), r.numel(), "STE gradient");
}

// LSQ's gradients: to w, the STE inside the clip range and 0 outside; to each
// step s, Σ dy·(round(w/s) − w/s | −Qn | Qp) / sqrt(N·Qp), which is the exact
// derivative of the surrogate s·clip(w/s) + s·(q − clip(w/s)) with q, the
// rounded code, held at its value. The check differentiates that surrogate
// numerically (q frozen) and compares.
TEST(FakeQuant, LsqGradientsMatchFiniteDifferencesOfTheSurrogate) {
  for (int bits : {2, 4}) {
    const quant::QuantSpec spec = fake_quant_spec(bits, 16);
    const int64_t rows = 3, cols = 40, ng = 3;  // groups of 16, 16, 8
    Parameter w("w", random_tensor({rows, cols}, 3));
    Tensor steps = rtn_steps(w.value, spec);
    for (int64_t i = 0; i < steps.numel(); ++i) steps.f32()[i] *= (i % 2 ? 0.6f : 1.3f);  // some values clip
    Parameter s("s", steps, false);
    const Tensor r = random_tensor({rows, cols}, 4);
    Graph g;
    g.backward(sum(mul(fake_quant_lsq(g.param(w), g.param(s), spec), g.constant(r))));

    const double z = double(1 << (bits - 1)), qn = z, qp = z - 1;
    int64_t clipped = 0;
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t k = 0; k < ng; ++k) {
        const int64_t c0 = k * 16, n = std::min<int64_t>(16, cols - c0);
        const float s0 = s.value.f32()[row * ng + k];
        std::vector<double> q(n);  // the codes, frozen
        for (int64_t j = 0; j < n; ++j) {
          const double t = w.value.f32()[row * cols + c0 + j] / s0;
          q[j] = std::clamp(std::nearbyint(t), -qn, qp);
        }
        auto surrogate = [&](double sv) {
          double f = 0;
          for (int64_t j = 0; j < n; ++j) {
            const double x = w.value.f32()[row * cols + c0 + j];
            const double frozen = q[j] - std::clamp(x / s0, -qn, qp);
            f += r.f32()[row * cols + c0 + j] * (sv * std::clamp(x / sv, -qn, qp) + sv * frozen);
          }
          return f;
        };
        const double h = 1e-4 * s0;
        const double numeric = (surrogate(s0 + h) - surrogate(s0 - h)) / (2 * h) / std::sqrt(double(n) * qp);
        EXPECT_NEAR(s.grad.f32()[row * ng + k], numeric, 1e-4 + 1e-3 * std::abs(numeric)) << "step " << row << "," << k;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t i = row * cols + c0 + j;
          const double t = w.value.f32()[i] / s0;
          const bool inside = t > -qn && t < qp;
          clipped += !inside;
          EXPECT_EQ(w.grad.f32()[i], inside ? r.f32()[i] : 0.0f) << "w[" << i << "]";
        }
      }
    EXPECT_GT(clipped, 0) << "the check should cover clipped values";
  }
}

// QAT with KD from the f32 model on a tiny Llama: LSQ steps and weights
// train, the loss falls, and the export equals the fake-quant forward exactly
// (weights and logits).
TEST(FakeQuant, QatTrainsAndExportsExactly) {
  OneThread one;
  TransformerParams teacher = TransformerParams::random(tiny_llama(false), 8, 0.5f);
  TransformerParams student = clone_params(teacher);
  FakeQuant fq(student, FakeQuantConfig{2, 8, true, {"q", "k", "v", "o", "gate", "up", "down", "head"}, false, {}});
  const int64_t seq = 8;
  const std::vector<int32_t> tokens = random_tokens(2 * seq, 11, 9);
  Graph tg;
  const Tensor teacher_logits = llama_logits(tg, teacher, tokens, seq)->value;
  std::vector<Parameter*> params = student.all();
  for (Parameter* p : fq.params()) params.push_back(p);
  EXPECT_EQ(fq.params().size(), 2u * 7 + 1);
  AdamW adam(params, AdamWConfig{0.9, 0.99, 1e-8, 0.0});
  const GraphOptions opt{nullptr, false, nullptr, &fq};
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    zero_grad(params);
    Graph g;
    Var loss = kl_divergence(llama_logits(g, student, tokens, seq, opt), g.constant(teacher_logits), 1.0f);
    g.backward(loss);
    adam.step(1e-2);
    (step == 0 ? first : last) = loss->v()[0];
  }
  std::printf("QAT 2-bit g8 + LSQ, tiny llama, KD from f32: KL %.4f -> %.4f in 30 steps\n", first, last);
  EXPECT_LT(last, 0.5f * first);

  // Export: each covered weight's GroupQuantWeight dequantizes to the fake-quant forward.
  Graph g;
  for (Parameter* w : student.linears()) {
    const Tensor deq = fq.export_weight(*w)->to_dense_f32();
    Var fake = fq.apply(g, w->name, g.constant(w->value));
    expect_bit_equal(deq.f32(), fake->v(), deq.numel(), w->name);
  }
  // A dense copy of the quantized model (quantize_in_place) gives the QAT graph's logits exactly.
  Var qat = llama_logits(g, student, tokens, seq, opt);
  TransformerParams exported = clone_params(student);
  fq.quantize_in_place(exported);
  Var plain = llama_logits(g, exported, tokens, seq);
  expect_bit_equal(plain->v(), qat->v(), qat->value.numel(), "logits");
}

}  // namespace
}  // namespace shrink::train
