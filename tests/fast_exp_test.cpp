// kernels/fast_exp.h against std::exp (the scalar reference), softmax_fast and
// log_sum_exp_fast against kernels::softmax / log_softmax_at at awkward
// lengths, and the training ops whose loops are split over threads: gradients
// bit-identical at 1 and 2 threads (sizes above the parallel thresholds).
#include <gtest/gtest.h>

#include <cmath>
#include <omp.h>
#include <random>

#include "grad_check.h"
#include "kernels/fast_exp.h"
#include "kernels/ops.h"
#include "train/losses.h"
#include "train/ops.h"
#include "train/optim.h"

namespace shrink {
namespace {

TEST(FastExp, MatchesStdExpOverTheRange) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double ref = std::exp(double(x));
    worst = std::max(worst, std::fabs(kernels::exp_approx(x) - ref) / ref);
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_FLOAT_EQ(kernels::exp_approx(0.0f), 1.0f);
  EXPECT_LT(kernels::exp_approx(-1e30f), 1e-37f);                  // clamped: tiny, not NaN
  EXPECT_LT(kernels::exp_approx(-INFINITY), 1e-37f);
  EXPECT_TRUE(std::isfinite(kernels::exp_approx(100.0f)));
}

TEST(FastExp, TanhMatchesStdTanh) {
  double worst = 0;
  for (float u = -30.0f; u <= 30.0f; u += 0.00137f)
    worst = std::max(worst, std::abs(double(kernels::tanh_approx(u)) - std::tanh(double(u))));
  EXPECT_LT(worst, 5e-7);
  EXPECT_NEAR(kernels::tanh_approx(100.0f), 1.0f, 1e-7);
  EXPECT_NEAR(kernels::tanh_approx(-100.0f), -1.0f, 1e-7);
  EXPECT_EQ(kernels::tanh_approx(0.0f), 0.0f);
}

TEST(FastExp, SoftmaxOfEqualAndExtremeRowsStaysFinite) {
  std::vector<float> x(37, 3.0f);
  kernels::softmax_fast(x.data(), 37);
  for (float v : x) EXPECT_NEAR(v, 1.0f / 37, 1e-7f);
  std::vector<float> y{-1e30f, 0.0f, -INFINITY, 50.0f};
  kernels::softmax_fast(y.data(), 4);
  EXPECT_NEAR(y[3], 1.0f, 1e-6f);
  for (float v : y) EXPECT_TRUE(std::isfinite(v));
}

TEST(FastExp, SoftmaxAndLogSumExpMatchTheReferenceAtAwkwardLengths) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 4.0f);
  for (int64_t n : {1, 2, 3, 7, 15, 16, 17, 31, 33, 255, 4096, 4099}) {
    std::vector<float> x(n);
    for (float& v : x) v = d(rng);
    std::vector<float> ref = x, got = x;
    kernels::softmax(ref.data(), n);
    kernels::softmax_fast(got.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(got[i], ref[i], 1e-6f * std::max(1.0f, ref[i] * 10)) << n << " " << i;
    std::vector<float> scalar = x;  // the SIMD path against its scalar reference
    kernels::softmax_fast_scalar(scalar.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(got[i], scalar[i], 1e-6f * std::max(1.0f, scalar[i] * 10)) << n;
    const double lse_ref = double(x[0]) - kernels::log_softmax_at(x.data(), n, 0);
    EXPECT_NEAR(kernels::log_sum_exp_fast(x.data(), n), lse_ref, 1e-5 * std::max(1.0, std::fabs(lse_ref))) << n;
    EXPECT_NEAR(kernels::log_sum_exp_fast_scalar(x.data(), n), lse_ref, 1e-5 * std::max(1.0, std::fabs(lse_ref))) << n;
  }
}

// SwiGLU's silu(gate) · up against std::exp, and the SIMD path against its
// scalar reference, at lengths around the 16-lane width and past the
// kernel's 16384-value threading chunk; extreme gates saturate to 0 and x · up.
TEST(FastExp, SiluMulMatchesStdExpAtAwkwardLengths) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.0f, 6.0f);
  for (int64_t n : {1, 3, 15, 16, 17, 33, 4096, 4099, 70001}) {
    std::vector<float> g(n), u(n);
    for (int64_t i = 0; i < n; ++i) g[i] = d(rng), u[i] = d(rng);
    g[0] = -200.0f, g[n - 1] = n > 1 ? 200.0f : g[n - 1];
    std::vector<float> got = g, scalar = g;
    kernels::silu_mul(got.data(), u.data(), n);
    kernels::silu_mul_fast_scalar(scalar.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float ref = float(double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i]);
      const float tol = 1e-6f * std::max(1.0f, std::fabs(ref));
      ASSERT_NEAR(got[i], ref, tol) << n << " " << i << " gate " << g[i];
      ASSERT_NEAR(got[i], scalar[i], tol) << n << " " << i;
    }
  }
}

// One training-shaped graph (embedding, rmsnorm, SwiGLU, attention, linear
// with bias, cross-entropy) big enough that every split loop runs threaded;
// returns the loss and all gradients after clip_grad_norm.
std::vector<float> grads_at(int threads) {
  omp_set_num_threads(threads);
  const int64_t seq = 128, n = 2 * seq, d = 256, vocab = 512;
  std::vector<train::Parameter> ps{train::test::rand_param("emb", {vocab, d}, 1), train::test::rand_param("norm", {d}, 2),
                                   train::test::rand_param("wq", {d, d}, 3, -0.1f, 0.1f),
                                   train::test::rand_param("up", {d, d}, 4, -0.1f, 0.1f),
                                   train::test::rand_param("out", {vocab, d}, 5, -0.1f, 0.1f), train::test::rand_param("b", {vocab}, 6)};
  const std::vector<int32_t> tokens = train::test::random_tokens(n, int(vocab), 8);
  const std::vector<int32_t> targets = train::test::random_tokens(n, int(vocab), 9);
  train::Graph g;
  std::vector<train::Var> l;
  for (auto& p : ps) l.push_back(g.param(p));
  train::Var x = train::rmsnorm(train::embedding(l[0], tokens), l[1], 1e-5f);
  train::Var q = train::linear(x, l[2]);
  train::Var a = train::attention(q, q, q, 8, 8, 32, seq);
  train::Var h = train::add(x, train::swiglu(a, train::linear(x, l[3])));
  train::Var loss = train::cross_entropy(train::linear(h, l[4], l[5]), targets);
  g.backward(loss);
  std::vector<train::Parameter*> pp;
  for (auto& p : ps) pp.push_back(&p);
  std::vector<float> out{loss->v()[0], float(train::clip_grad_norm(pp, 0.5))};
  for (auto& p : ps) out.insert(out.end(), p.grad.f32(), p.grad.f32() + p.numel());
  return out;
}

TEST(FastExp, TrainingGradientsAreBitIdenticalAtOneAndTwoThreads) {
  const int saved = omp_get_max_threads();
  const std::vector<float> one = grads_at(1), two = grads_at(2);
  omp_set_num_threads(saved);
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(one[i], two[i]) << "entry " << i;
}

}  // namespace
}  // namespace shrink
