// LoRA (train/lora.h): adapter gradients by finite differences with the base
// frozen, zero-initialised B leaves the model unchanged, merging W += (α/r)·B·A
// gives the adapter model's logits, and training only the adapters lowers the loss.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "grad_check.h"
#include "train/llama_graph.h"
#include "train/lora.h"
#include "train/losses.h"
#include "train/optim.h"
#include "train/student_init.h"

namespace shrink::train {
namespace {

using namespace test;

void randomize(Parameter& p, uint64_t seed, float amp) {
  const Tensor r = random_tensor(p.value.shape, seed, -amp, amp);
  std::copy(r.f32(), r.f32() + r.numel(), p.value.f32());
}

TEST(Lora, TargetsShapesAndParameterList) {
  TransformerParams model = TransformerParams::random(tiny_llama(false), 1, 0.3f);
  LoraAdapters lora(model, LoraConfig{2, 4.0f, parse_lora_targets("q,v,down"), 1});
  EXPECT_EQ(lora.size(), 6u);  // 3 roles x 2 blocks
  EXPECT_FLOAT_EQ(lora.scaling(), 2.0f);
  ASSERT_NE(lora.find("blk.1.ffn_down.weight"), nullptr);
  EXPECT_EQ(lora.find("blk.0.attn_k.weight"), nullptr);
  const LoraAdapters::Adapter* down = lora.find("blk.1.ffn_down.weight");
  EXPECT_EQ(down->a.value.shape, (std::vector<int64_t>{2, 12}));  // A {r, in}
  EXPECT_EQ(down->b.value.shape, (std::vector<int64_t>{8, 2}));   // B {out, r}
  for (int64_t i = 0; i < down->b.numel(); ++i) EXPECT_EQ(down->b.value.f32()[i], 0.0f);
  // Only the adapters are trainable: r·(in + out) per Linear.
  EXPECT_EQ(lora.params().size(), 12u);
  EXPECT_EQ(lora.count(), 2 * 2 * ((8 + 8) + (8 + 4) + (12 + 8)));
  EXPECT_EQ(parse_lora_targets("all").size(), 7u);
  EXPECT_THROW(parse_lora_targets("q,x"), Error);
  EXPECT_THROW(LoraAdapters(model, LoraConfig{5, 8.0f, {"k"}, 0}), Error);  // rank 5 > k's 4 outputs
}

// The adapters' gradients (B random so that A's is not zero) against finite
// differences; the frozen base gets none.
TEST(Lora, AdapterGradientsWithFrozenBase) {
  for (bool tied : {false, true}) {
    TransformerParams model = TransformerParams::random(tiny_llama(tied), 2, 0.5f);
    LoraAdapters lora(model, LoraConfig{2, 3.0f, parse_lora_targets(tied ? "all" : "q,o,up"), 7});
    uint64_t seed = 100;
    for (Parameter* p : lora.params())
      if (p->name.find("lora_b") != std::string::npos) randomize(*p, seed++, 0.5f);
    const int64_t seq = 4;
    const std::vector<int32_t> in = random_tokens(2 * seq, 11, 3), target = random_tokens(2 * seq, 11, 4);
    std::vector<Parameter> ps;
    for (Parameter* p : lora.params()) ps.push_back(*p);
    const GraphOptions opt{nullptr, true, &lora, nullptr};
    zero_grad(model.all());
    expect_grads_match(
        ps, [&](Graph& g, std::vector<Var>&) { return cross_entropy(llama_logits(g, model, in, seq, opt), target); },
        Tolerance{1e-2f, 2e-2, 2e-3});
    for (Parameter* p : model.all())
      for (int64_t i = 0; i < p->numel(); ++i) ASSERT_EQ(p->grad.f32()[i], 0.0f) << p->name << " is not frozen";
  }
}

TEST(Lora, ZeroBLeavesTheModelAndMergeReproducesTheAdapters) {
  TransformerParams model = TransformerParams::random(tiny_llama(false), 3, 0.5f);
  LoraAdapters lora(model, LoraConfig{3, 6.0f, parse_lora_targets("all"), 2});
  const int64_t seq = 6;
  const std::vector<int32_t> tokens = random_tokens(2 * seq, 11, 5);
  const GraphOptions opt{nullptr, true, &lora, nullptr};
  Graph g;
  Var base = llama_logits(g, model, tokens, seq), adapted = llama_logits(g, model, tokens, seq, opt);
  for (int64_t i = 0; i < base->value.numel(); ++i) ASSERT_EQ(base->v()[i], adapted->v()[i]);  // B = 0

  uint64_t seed = 200;
  for (Parameter* p : lora.params()) randomize(*p, seed++, 0.3f);  // as if trained
  Var with_adapters = llama_logits(g, model, tokens, seq, opt);
  TransformerParams merged = clone_params(model);
  lora.merge_into(merged);
  Var merged_logits = llama_logits(g, merged, tokens, seq);
  double worst = 0, moved = 0;
  for (int64_t i = 0; i < base->value.numel(); ++i) {
    worst = std::max(worst, double(std::abs(merged_logits->v()[i] - with_adapters->v()[i])));
    moved = std::max(moved, double(std::abs(with_adapters->v()[i] - base->v()[i])));
  }
  std::printf("LoRA merge: max |merged - adapter logits| %.3g (the adapters moved logits by up to %.3g)\n", worst,
              moved);
  EXPECT_GT(moved, 0.1);
  EXPECT_LT(worst, 1e-4);
}

TEST(Lora, TrainingOnlyAdaptersLowersTheLoss) {
  OneThread one;  // tiny products: threads only add barriers
  TransformerParams model = TransformerParams::random(tiny_llama(false), 4, 0.3f);
  TransformerParams before = clone_params(model);
  LoraAdapters lora(model, LoraConfig{4, 8.0f, parse_lora_targets("all"), 3});
  const int64_t seq = 8;
  const std::vector<int32_t> data = random_tokens(2 * seq + 1, 11, 6);
  const std::vector<int32_t> in(data.begin(), data.end() - 1), target(data.begin() + 1, data.end());
  const GraphOptions opt{nullptr, true, &lora, nullptr};
  AdamW adam(lora.params(), AdamWConfig{0.9, 0.99, 1e-8, 0.0});
  float first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    zero_grad(lora.params());
    Graph g;
    Var loss = cross_entropy(llama_logits(g, model, in, seq, opt), target);
    g.backward(loss);
    adam.step(2e-2);
    (step == 0 ? first : last) = loss->v()[0];
  }
  std::printf("LoRA-only training, tiny llama: loss %.3f -> %.3f in 40 steps\n", first, last);
  EXPECT_LT(last, 0.7f * first);
  auto a = model.all(), b = before.all();
  for (size_t k = 0; k < a.size(); ++k)
    for (int64_t i = 0; i < a[k]->numel(); ++i) ASSERT_EQ(a[k]->value.f32()[i], b[k]->value.f32()[i]);
}

}  // namespace
}  // namespace shrink::train
