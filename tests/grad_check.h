// Finite-difference gradient checks shared by the training tests
// (autograd_test, distill_loss_test, lora_test, fake_quant_test): every
// entry of every parameter's backward() gradient against central differences.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <omp.h>
#include <random>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/autograd.h"
#include "train/ops.h"

namespace shrink::train::test {

inline Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = Tensor::alloc(DType::F32, std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = dist(rng);
  return t;
}

// A scalar that weighs every entry of y differently, Σ y ⊙ R, so that a wrong
// gradient in any single entry shows.
inline Var project(Var y, uint64_t seed = 99) { return sum(mul(y, y->graph->constant(random_tensor(y->value.shape, seed)))); }

using Build = std::function<Var(Graph&, std::vector<Var>&)>;

// The checks run thousands of forwards of a few tokens each: one thread, or
// the kernels' parallel regions (on a loaded 2-core machine) cost more than the math.
struct OneThread {
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
};

struct Tolerance {
  float eps = 1e-2f;     // central-difference step
  double rtol = 1e-2;    // relative to the larger of the two gradients
  double atol = 1e-3;    // f32 rounding of the loss, over 2·eps
};

inline float loss_of(std::vector<Parameter>& ps, const Build& build) {
  Graph g;
  std::vector<Var> leaves;
  for (auto& p : ps) leaves.push_back(g.param(p));
  return build(g, leaves)->v()[0];
}

// Compares backward()'s gradient of every entry of every parameter with
// (L(θ+eps) − L(θ−eps)) / 2eps, all in f32.
inline void expect_grads_match(std::vector<Parameter>& ps, const Build& build, Tolerance tol = {}) {
  OneThread one;
  for (auto& p : ps) p.zero_grad();
  {
    Graph g;
    std::vector<Var> leaves;
    for (auto& p : ps) leaves.push_back(g.param(p));
    g.backward(build(g, leaves));
  }
  int bad = 0;
  for (auto& p : ps) {
    for (int64_t i = 0; i < p.numel(); ++i) {
      float& w = p.value.f32()[i];
      const float orig = w;
      w = orig + tol.eps;
      const double up = loss_of(ps, build);
      w = orig - tol.eps;
      const double down = loss_of(ps, build);
      w = orig;
      const double numeric = (up - down) / (2.0 * tol.eps), analytic = p.grad.f32()[i];
      const double allowed = tol.atol + tol.rtol * std::max(std::abs(numeric), std::abs(analytic));
      if (std::abs(numeric - analytic) > allowed && ++bad <= 10)
        ADD_FAILURE() << p.name << "[" << i << "]: backward " << analytic << ", finite difference " << numeric;
    }
  }
  EXPECT_EQ(bad, 0);
}

inline Parameter rand_param(const std::string& name, std::vector<int64_t> shape, uint64_t seed, float lo = -1.0f,
                     float hi = 1.0f) {
  return Parameter(name, random_tensor(std::move(shape), seed, lo, hi));
}

// A 2-layer Llama small enough for finite differences on every weight.
inline ModelConfig tiny_llama(bool tied) {
  ModelConfig c;
  c.dim = 8;
  c.hidden_dim = 12;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.vocab_size = 11;
  c.max_seq_len = 16;
  c.tied_embeddings = tied;
  c.validate("tiny test llama");
  return c;
}

inline std::vector<int32_t> random_tokens(int64_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % vocab);
  return t;
}

}  // namespace shrink::train::test
