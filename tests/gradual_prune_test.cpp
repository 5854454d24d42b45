// Gradual magnitude pruning (compress/prune/gradual.h, Zhu & Gupta 2017): the
// cubic schedule, masks that hold between pruning steps and only grow, a
// resumed run equal to an uninterrupted one, and `shrink train --prune-to`
// end to end. No ../shared needed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "compress/prune/gradual.h"
#include "core/cpu.h"
#include "core/error.h"
#include "test_util.h"
#include "train_fixtures.h"
#include "train/trainer.h"

namespace shrink::prune {
namespace {

GradualPruneOptions schedule(double from, double to, int64_t start, int64_t end, int64_t every) {
  GradualPruneOptions o;
  o.initial = from, o.target = to, o.start = start, o.end = end, o.every = every;
  return o;
}

TEST(GradualPrune, CubicScheduleFollowsZhuAndGupta) {
  const GradualPruneOptions o = schedule(0.1, 0.7, 10, 50, 10);
  EXPECT_EQ(agp_sparsity(o, 0), 0.0);
  EXPECT_EQ(agp_sparsity(o, 9), 0.0);
  EXPECT_DOUBLE_EQ(agp_sparsity(o, 10), 0.1);
  for (int64_t t = 10; t <= 50; t += 10) {
    const double r = 1.0 - double(t - 10) / 40.0;
    EXPECT_NEAR(agp_sparsity(o, t), 0.7 + (0.1 - 0.7) * r * r * r, 1e-15) << t;
    EXPECT_TRUE(agp_is_pruning_step(o, t));
    EXPECT_EQ(agp_sparsity(o, t + 5), agp_sparsity(o, t)) << "held between pruning steps";
    EXPECT_FALSE(agp_is_pruning_step(o, t + 5));
  }
  EXPECT_EQ(agp_sparsity(o, 1000), 0.7);
  EXPECT_FALSE(agp_is_pruning_step(o, 60));
  // Fast first, slow last: the increments shrink.
  double prev = 0.1, prev_inc = 1;
  for (int64_t t = 20; t <= 50; t += 10) {
    const double inc = agp_sparsity(o, t) - prev;
    EXPECT_GT(inc, 0);
    EXPECT_LT(inc, prev_inc);
    prev = agp_sparsity(o, t), prev_inc = inc;
  }
}

TEST(GradualPrune, RejectsBadSchedules) {
  EXPECT_THROW(schedule(0, 1.0, 0, 10, 1).validate(), Error);
  EXPECT_THROW(schedule(0.6, 0.5, 0, 10, 1).validate(), Error);
  EXPECT_NO_THROW(schedule(0.5, 0.5, 4, 4, 1).validate());  // one-shot at step 4, mask held
  EXPECT_EQ(agp_sparsity(schedule(0.5, 0.5, 4, 4, 1), 3), 0.0);
  EXPECT_EQ(agp_sparsity(schedule(0.5, 0.5, 4, 4, 1), 4), 0.5);
  EXPECT_EQ(agp_sparsity(schedule(0.5, 0.5, 4, 20, 4), 8), 0.5);
  EXPECT_THROW(schedule(0, 0.5, 10, 10, 1).validate(), Error);
  EXPECT_THROW(schedule(0, 0.5, 0, 10, 3).validate(), Error);  // 10 is not a multiple of 3
  EXPECT_THROW(schedule(0, 0.5, 0, 10, 0).validate(), Error);
  EXPECT_NO_THROW(schedule(0, 0.5, 0, 9, 3).validate());
}

train::Parameter random_weight(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Tensor t = Tensor::alloc(DType::F32, {rows, cols});
  for (int64_t i = 0; i < t.numel(); ++i) t.ptr<float>()[i] = nd(rng);
  return train::Parameter("w" + std::to_string(seed), std::move(t));
}

int64_t zeros(const train::Parameter& p) {
  int64_t z = 0;
  for (int64_t i = 0; i < p.numel(); ++i) z += p.value.ptr<float>()[i] == 0.0f;
  return z;
}

// Every matrix gets exactly round(s_t * count) zeros at each pruning step
// (awkward shapes included); masked weights stay zero while "training" moves
// every weight, and a pruned weight is never revived.
TEST(GradualPrune, MasksHoldBetweenStepsAndOnlyGrow) {
  train::Parameter a = random_weight(7, 13, 1), b = random_weight(33, 5, 2);
  const GradualPruneOptions o = schedule(0.0, 0.8, 0, 12, 3);
  GradualPruner pruner({&a, &b}, o);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 0.05f);
  std::vector<uint8_t> was_zero_a(a.numel(), 0);
  for (int64_t step = 0; step <= 16; ++step) {
    if (step > 0)  // an optimizer update touches every weight, pruned or not
      for (train::Parameter* p : {&a, &b})
        for (int64_t i = 0; i < p->numel(); ++i) p->value.ptr<float>()[i] += nd(rng);
    pruner.after_update(step);
    const double s = agp_sparsity(o, step);
    EXPECT_EQ(pruner.sparsity(), s);
    EXPECT_EQ(zeros(a), std::llround(s * a.numel())) << step;
    EXPECT_EQ(zeros(b), std::llround(s * b.numel())) << step;
    for (int64_t i = 0; i < a.numel(); ++i) {
      if (was_zero_a[i]) {
        EXPECT_EQ(a.value.ptr<float>()[i], 0.0f) << "revived at step " << step;
      }
      was_zero_a[i] = a.value.ptr<float>()[i] == 0.0f;
    }
  }
  EXPECT_EQ(zeros(a), std::llround(0.8 * a.numel()));
}

// A pruner created at a step between pruning steps (a resumed run, called
// before its first update) takes the zeros as its mask and keeps them.
TEST(GradualPrune, FreshPrunerBetweenStepsKeepsTheZeros) {
  train::Parameter a = random_weight(16, 16, 4);
  const GradualPruneOptions o = schedule(0.0, 0.5, 0, 10, 5);
  GradualPruner first({&a}, o);
  first.after_update(0);
  first.after_update(5);
  const int64_t z = zeros(a);
  EXPECT_EQ(z, std::llround(agp_sparsity(o, 5) * 256));
  GradualPruner resumed({&a}, o);
  resumed.after_update(5);  // the Trainer's call before its first step
  EXPECT_EQ(zeros(a), z);
  for (int64_t i = 0; i < a.numel(); ++i) a.value.ptr<float>()[i] += 0.01f;  // training moves every weight
  resumed.after_update(6);
  EXPECT_EQ(zeros(a), z);
}

}  // namespace
}  // namespace shrink::prune

namespace shrink::train {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.dim = 32, c.hidden_dim = 48, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 64;
  c.max_seq_len = 64;
  c.validate("test");
  return c;
}

std::vector<int32_t> stream(int64_t n, uint64_t seed) { return fixtures::learnable_stream(n, 64, seed); }

TrainObjective pruning_objective(TransformerParams& p, std::shared_ptr<prune::GradualPruner>& keep) {
  std::vector<Parameter*> w;
  for (auto& b : p.blocks)
    for (Parameter* q : {&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down}) w.push_back(q);
  prune::GradualPruneOptions o;
  o.target = 0.6, o.start = 0, o.end = 6, o.every = 3;  // pruning at 0, 3, 6
  keep = std::make_shared<prune::GradualPruner>(w, o);
  TrainObjective obj;
  auto pruner = keep;
  obj.after_update = [pruner](int64_t s) { pruner->after_update(s); };
  obj.trajectory["gradual_prune"] = {{"to", 0.6}};
  return obj;
}

// Killed after the checkpoint of step 4 (between pruning steps 3 and 6) and
// resumed with a fresh pruner: the same bytes as an uninterrupted run, at the
// target sparsity.
TEST(GradualPrune, ResumedTrainingEqualsUninterrupted) {
  set_num_threads(1);
  const std::string dir = test::temp_dir("agp_resume");
  const std::vector<int32_t> data = stream(3000, 1), valid = stream(300, 2);
  TrainOptions o;
  o.steps = 10, o.batch = 2, o.seq_len = 16, o.lr = 3e-3, o.warmup = 2, o.seed = 5;
  std::shared_ptr<prune::GradualPruner> k1, k2, k3;
  TransformerParams whole = TransformerParams::random(tiny_config(), 1);
  Trainer a(whole, data, valid, o, pruning_objective(whole, k1));
  a.run(-1, nullptr, nullptr);
  TrainOptions oc = o;
  oc.ckpt_dir = dir, oc.ckpt_every = 4;
  {
    TransformerParams first = TransformerParams::random(tiny_config(), 1);
    Trainer b(first, data, valid, oc, pruning_objective(first, k2));
    b.run(4, nullptr, nullptr);
  }
  TransformerParams resumed = TransformerParams::random(tiny_config(), 1);
  Trainer c(resumed, data, valid, oc, pruning_objective(resumed, k3));
  c.restore(c.checkpoint_path());
  c.run(-1, nullptr, nullptr);
  set_num_threads(0);
  const auto all_a = whole.all(), all_c = resumed.all();
  for (size_t i = 0; i < all_a.size(); ++i)
    EXPECT_EQ(std::memcmp(all_a[i]->value.data, all_c[i]->value.data, all_a[i]->value.nbytes()), 0) << all_a[i]->name;
  int64_t z = 0, n = 0;
  for (auto& b : whole.blocks)
    for (Parameter* q : {&b.wq, &b.w_down}) {
      for (int64_t i = 0; i < q->numel(); ++i) z += q->value.ptr<float>()[i] == 0.0f;
      n += q->numel();
    }
  EXPECT_NEAR(double(z) / double(n), 0.6, 0.01);
}

TEST(GradualPrune, TrainCliPrunesToTheTarget) {
  const std::string dir = test::temp_dir("agp_cli");
  ASSERT_EQ(test::run_shrink("init --preset tiny -o " + dir + "/m.gguf").code, 0);
  {
    std::FILE* f = std::fopen((dir + "/text.txt").c_str(), "w");
    for (int i = 0; i < 2000; ++i) std::fprintf(f, "the cat sat on the mat %d\n", i % 7);
    std::fclose(f);
  }
  const std::string base = "train --init " + dir + "/m.gguf --data " + dir + "/text.txt --cache-dir " + dir +
                           "/cache --steps 8 --batch 2 --seq-len 32 -t 1 -o " + dir + "/p.gguf";
  const auto r = test::run_shrink(base + " --prune-to 0.5 --prune-every 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("gradual pruning"), std::string::npos) << r.out;
  const auto i = test::run_shrink("inspect " + dir + "/p.gguf --tensors");
  ASSERT_EQ(i.code, 0) << i.out;
  const auto bad = test::run_shrink(base + " --prune-to 0.5 --prune-every 3 --prune-end 8");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("multiple of the interval"), std::string::npos) << bad.out;
  const auto past = test::run_shrink(base + " --prune-to 0.5 --prune-end 20 --prune-every 4");
  EXPECT_NE(past.code, 0);
  EXPECT_NE(past.out.find("past --steps"), std::string::npos) << past.out;
}

}  // namespace
}  // namespace shrink::train
