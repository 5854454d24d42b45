// Tests of model/linear.h's forward_shared_input: one kernel pass over several
// block-quantized Linears reading one input gives what Linear::forward gives
// each of them, biases included; in a mix, each ggml type (and layout: the
// SHRINK_REPACK copies) shares one pass and the rest (dense weights, several
// tokens) run one forward each.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "kernels/quant_blocks.h"
#include "model/linear.h"

namespace shrink {
namespace {

Tensor random_f32(std::vector<int64_t> shape, std::mt19937& rng) {
  Tensor t = Tensor::alloc(DType::F32, std::move(shape));
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(rng);
  return t;
}

Linear quantized_linear(const std::string& name, DType t, int64_t out, int64_t in, bool bias, std::mt19937& rng) {
  const Tensor w = random_f32({out, in}, rng);
  Tensor q = Tensor::alloc(t, {out, in});
  if (t == DType::F32)
    q = w.clone();
  else
    kernels::quantize_rows(t, w.f32(), q.data, out, in);
  const Tensor b = random_f32({out}, rng);
  return Linear::dense(name, q, bias ? &b : nullptr);
}

// forward_shared_input against Linear::forward of each, for n tokens of input.
void expect_same_as_one_by_one(const std::vector<Linear>& ls, int64_t n, std::mt19937& rng) {
  const int64_t in = ls[0].in_features();
  const Tensor x = random_f32({n, in}, rng);
  std::vector<const Linear*> ptrs;
  std::vector<std::vector<float>> got, want;
  std::vector<float*> ys;
  for (const Linear& l : ls) {
    ptrs.push_back(&l);
    got.emplace_back(static_cast<size_t>(n * l.out_features()), -7.0f);
    want.emplace_back(static_cast<size_t>(n * l.out_features()));
    l.forward(x.f32(), want.back().data(), n);
  }
  for (auto& g : got) ys.push_back(g.data());
  forward_shared_input(ptrs, x.f32(), ys, n);
  for (size_t i = 0; i < ls.size(); ++i) EXPECT_EQ(got[i], want[i]) << ls[i].name();
}

TEST(Linear, SharedInputOnePassEqualsForwardEach) {
  std::mt19937 rng(3);
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    // q/k/v-like shapes (grouped-query k/v narrower), large enough to be threaded, and one with a bias.
    std::vector<Linear> ls;
    ls.push_back(quantized_linear("q", t, 512, 512, false, rng));
    ls.push_back(quantized_linear("k", t, 128, 512, true, rng));
    ls.push_back(quantized_linear("v", t, 130, 512, false, rng));
    expect_same_as_one_by_one(ls, 1, rng);
    expect_same_as_one_by_one(ls, 3, rng);  // prefill: one forward each
  }
}

// With SHRINK_REPACK=1 (read at each weight's first single-token product) the Q4_0 / Q4_K
// weights decode from their 16-row repacked copies: those with whole groups share one
// x16_gemv_parts pass, a weight whose rows are not a multiple of 16 runs alone.
TEST(Linear, SharedInputRepackedOnePassEqualsForwardEach) {
  setenv("SHRINK_REPACK", "1", 1);
  std::mt19937 rng(6);
  for (DType t : {DType::Q4_0, DType::Q4_K}) {
    std::vector<Linear> ls;
    ls.push_back(quantized_linear("q", t, 512, 512, false, rng));
    ls.push_back(quantized_linear("k", t, 128, 512, true, rng));
    ls.push_back(quantized_linear("v", t, 130, 512, false, rng));
    ls.push_back(quantized_linear("o", t, 256, 512, false, rng));
    expect_same_as_one_by_one(ls, 1, rng);
    expect_same_as_one_by_one(ls, 2, rng);
  }
  unsetenv("SHRINK_REPACK");
}

TEST(Linear, SharedInputFallsBackForMixedOrDenseWeights) {
  std::mt19937 rng(4);
  std::vector<Linear> mixed;
  mixed.push_back(quantized_linear("a", DType::Q4_0, 64, 256, false, rng));
  mixed.push_back(quantized_linear("b", DType::Q8_0, 32, 256, true, rng));
  mixed.push_back(quantized_linear("c", DType::F32, 16, 256, true, rng));
  expect_same_as_one_by_one(mixed, 1, rng);
  std::vector<Linear> one;
  one.push_back(quantized_linear("only", DType::Q4_K, 40, 512, true, rng));
  expect_same_as_one_by_one(one, 1, rng);
  // A Q4_K_M-like mix: the two Q4_K (not adjacent) share a pass, Q6_K and F32 run on their own.
  std::vector<Linear> mix;
  mix.push_back(quantized_linear("q", DType::Q4_K, 512, 512, false, rng));
  mix.push_back(quantized_linear("v", DType::Q6_K, 128, 512, false, rng));
  mix.push_back(quantized_linear("k", DType::Q4_K, 128, 512, true, rng));
  mix.push_back(quantized_linear("f", DType::F32, 16, 512, false, rng));
  expect_same_as_one_by_one(mix, 1, rng);
}

TEST(Linear, SharedInputChecksItsArguments) {
  std::mt19937 rng(5);
  const Linear l = quantized_linear("a", DType::Q4_0, 8, 64, false, rng);
  std::vector<float> x(64), y(8);
  EXPECT_THROW(forward_shared_input({&l, &l}, x.data(), {y.data()}, 1), Error);
  const Linear wide = quantized_linear("wide", DType::Q4_0, 8, 128, false, rng);
  std::vector<float> y2(8);
  EXPECT_THROW(forward_shared_input({&l, &wide}, x.data(), {y.data(), y2.data()}, 1), Error);
}

}  // namespace
}  // namespace shrink
