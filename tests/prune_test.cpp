// Pruning (compress/prune): patterns, the three criteria on small matrices with
// known answers, the whole-model driver, and `shrink prune` on stories260K.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "compress/calib/obs.h"
#include "compress/calib/stats.h"
#include "compress/prune/prune.h"
#include "core/error.h"
#include "model/random_init.h"
#include "test_util.h"

namespace shrink {
namespace {

using prune::MaskScope;
using prune::SparsityPattern;

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  Tensor w = Tensor::alloc(DType::F32, {rows, cols});
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = nd(rng);
  return w;
}

// n inputs whose columns have very different scales (as LLM activations'
// outlier features) and are correlated through a shared mixing matrix.
std::vector<float> correlated_inputs(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> mix(static_cast<size_t>(cols * cols)), scale(static_cast<size_t>(cols)), x(static_cast<size_t>(n * cols));
  for (auto& v : mix) v = nd(rng) * 0.3f;
  for (int64_t c = 0; c < cols; ++c) mix[c * cols + c] += 1.0f, scale[c] = std::exp(1.2f * nd(rng));
  std::vector<float> z(static_cast<size_t>(cols));
  for (int64_t t = 0; t < n; ++t) {
    for (auto& v : z) v = nd(rng);
    for (int64_t c = 0; c < cols; ++c) {
      float s = 0;
      for (int64_t k = 0; k < cols; ++k) s += z[k] * mix[k * cols + c];
      x[t * cols + c] = s * scale[c];
    }
  }
  return x;
}

std::vector<float> hessian_of(const std::vector<float>& x, int64_t cols) {
  calib::Hessian h(cols);
  h.add(x.data(), int64_t(x.size()) / cols);
  return h.matrix();
}

std::vector<float> diagonal(const std::vector<float>& h, int64_t n) {
  std::vector<float> d(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) d[i] = h[i * n + i];
  return d;
}

// Every group of M consecutive weights of every row keeps at most nm_keep of them.
void expect_nm(const Tensor& w, const SparsityPattern& p) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += p.m) {
      const int64_t len = std::min<int64_t>(p.m, cols - c0);
      int64_t kept = 0;
      for (int64_t c = c0; c < c0 + len; ++c) kept += w.f32()[r * cols + c] != 0.0f;
      ASSERT_EQ(kept, prune::nm_keep(p, len)) << "row " << r << " group at " << c0 << " of " << p.name();
    }
}

TEST(SparsityPattern, ParsesRatiosPercentagesAndNM) {
  EXPECT_DOUBLE_EQ(SparsityPattern::parse("0.5").sparsity(), 0.5);
  EXPECT_DOUBLE_EQ(SparsityPattern::parse("70%").sparsity(), 0.7);
  const SparsityPattern p = SparsityPattern::parse("2:4");
  EXPECT_TRUE(p.is_nm());
  EXPECT_EQ(p.n, 2);
  EXPECT_EQ(p.m, 4);
  EXPECT_EQ(p.name(), "2:4");
  EXPECT_EQ(SparsityPattern::parse("0.5").name(), "0.5");
  EXPECT_DOUBLE_EQ(SparsityPattern::parse("1:4").sparsity(), 0.75);
}

TEST(SparsityPattern, RejectsBadInput) {
  for (const char* bad : {"0", "1", "1.5", "-0.2", "100%", "abc", "4:4", "5:4", "0:4", "2:", ":4", "2:4x", "0.5x"})
    EXPECT_THROW(SparsityPattern::parse(bad), Error) << bad;
}

TEST(Magnitude, PrunesExactlyTheSmallestWeightsOfTheLayer) {
  const Tensor w = random_matrix(37, 53, 1);
  for (double s : {0.3, 0.5, 0.7}) {
    const Tensor p = prune::prune_by_score(w, nullptr, SparsityPattern::parse(std::to_string(s)), MaskScope::Layer);
    const int64_t zeros = std::llround(prune::zero_fraction(p.f32(), p.numel()) * double(p.numel()));
    EXPECT_EQ(zeros, std::llround(s * double(w.numel())));
    float max_pruned = 0, min_kept = 1e30f;
    for (int64_t i = 0; i < w.numel(); ++i) {
      if (p.f32()[i] == 0) {
        max_pruned = std::max(max_pruned, std::fabs(w.f32()[i]));
      } else {
        min_kept = std::min(min_kept, std::fabs(w.f32()[i]));
        EXPECT_EQ(p.f32()[i], w.f32()[i]);
      }
    }
    EXPECT_LE(max_pruned, min_kept);
  }
}

TEST(Wanda, ScoresByWeightTimesInputNormNotByWeight) {
  // One row [1, 2, 3, 4]; input 0 is 10x louder than the others. Magnitude
  // drops columns 0 and 1; Wanda (|W|·||X||: 10, 2, 3, 4) drops 1 and 2.
  Tensor w = Tensor::alloc(DType::F32, {1, 4});
  for (int c = 0; c < 4; ++c) w.f32()[c] = float(c + 1);
  const float col_sq[4] = {100, 1, 1, 1};
  const SparsityPattern half = SparsityPattern::parse("0.5");
  const Tensor mag = prune::prune_by_score(w, nullptr, half, MaskScope::Layer);
  const Tensor wanda = prune::prune_by_score(w, col_sq, half, MaskScope::Row);
  EXPECT_EQ(std::vector<float>(mag.f32(), mag.f32() + 4), (std::vector<float>{0, 0, 3, 4}));
  EXPECT_EQ(std::vector<float>(wanda.f32(), wanda.f32() + 4), (std::vector<float>{1, 0, 0, 4}));
}

TEST(Wanda, ComparesWithinEachOutputRow) {
  // Row 1 is 100x row 0: a layer-wide comparison would empty row 0; Wanda prunes half of each row.
  Tensor w = random_matrix(8, 30, 2);
  for (int64_t c = 0; c < 30; ++c) w.f32()[30 + c] *= 100;
  std::vector<float> ones(30, 1.0f);
  const Tensor p = prune::prune_by_score(w, ones.data(), SparsityPattern::parse("0.4"), MaskScope::Row);
  for (int64_t r = 0; r < 8; ++r) EXPECT_DOUBLE_EQ(prune::zero_fraction(p.f32() + r * 30, 30), 0.4) << r;
}

TEST(NM, PatternHoldsInEveryGroupForEveryCriterion) {
  // 172 columns (stories260K's ffn_down): 4:8 leaves a 4-wide last group, which keeps 2.
  for (int64_t cols : {int64_t(16), int64_t(172), int64_t(70)}) {
    const Tensor w = random_matrix(19, cols, 3);
    const std::vector<float> x = correlated_inputs(256, cols, 4);
    const std::vector<float> h = hessian_of(x, cols);
    const std::vector<float> d = diagonal(h, cols);
    for (const char* pat : {"2:4", "4:8", "1:4"}) {
      const SparsityPattern p = SparsityPattern::parse(pat);
      expect_nm(prune::prune_by_score(w, nullptr, p, MaskScope::Layer), p);
      expect_nm(prune::prune_by_score(w, d.data(), p, MaskScope::Row), p);
      prune::SparseGptOptions o;
      o.block = 24;  // not a multiple of 8: rounded up so no group straddles two blocks
      expect_nm(prune::sparsegpt_prune(w, h, p, o).weight, p);
    }
  }
}

TEST(SparseGpt, AchievesTheTargetSparsity) {
  const Tensor w = random_matrix(40, 96, 5);
  const std::vector<float> h = hessian_of(correlated_inputs(300, 96, 6), 96);
  for (double s : {0.3, 0.5, 0.7}) {
    const Tensor p = prune::sparsegpt_prune(w, h, SparsityPattern::parse(std::to_string(s)), {}).weight;
    EXPECT_NEAR(prune::zero_fraction(p.f32(), p.numel()), s, 1.0 / double(p.numel())) << s;
  }
}

TEST(SparseGpt, WithIdentityHessianIsMagnitudePruningPerBlock) {
  // H = I: no correlations to exploit, saliency = w², nothing to compensate.
  const int64_t n = 32;
  const Tensor w = random_matrix(10, n, 7);
  std::vector<float> h(size_t(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) h[i * n + i] = 1.0f;
  prune::SparseGptOptions o;
  o.block = n, o.damp = 0;
  const SparsityPattern half = SparsityPattern::parse("0.5");
  const Tensor s = prune::sparsegpt_prune(w, h, half, o).weight;
  const Tensor m = prune::prune_by_score(w, nullptr, half, MaskScope::Layer);
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_NEAR(s.f32()[i], m.f32()[i], 1e-6) << i;
}

TEST(Criteria, SparseGptBeatsWandaBeatsMagnitudeOnCorrelatedInputs) {
  const int64_t rows = 64, cols = 128;
  const Tensor w = random_matrix(rows, cols, 8);
  const std::vector<float> h = hessian_of(correlated_inputs(1024, cols, 9), cols);
  const std::vector<float> d = diagonal(h, cols);
  for (const char* pat : {"0.5", "2:4", "0.7"}) {
    const SparsityPattern p = SparsityPattern::parse(pat);
    const double e_mag = calib::relative_output_error(w, prune::prune_by_score(w, nullptr, p, MaskScope::Layer), h);
    const double e_wanda = calib::relative_output_error(w, prune::prune_by_score(w, d.data(), p, MaskScope::Row), h);
    const double e_sgpt = calib::relative_output_error(w, prune::sparsegpt_prune(w, h, p, {}).weight, h);
    EXPECT_LT(e_sgpt, e_wanda) << pat;
    EXPECT_LT(e_wanda, e_mag) << pat;
  }
}

ModelFile tiny_model() {
  ModelConfig c = preset_config("tiny");
  c.validate("test");
  return random_model(c, DType::F32, 11);
}

calib::CalibSet tiny_calib() {
  calib::CalibSet calib;
  for (int s = 0; s < 3; ++s) calib.seqs.push_back(test::random_tokens(48, 20 + s));
  return calib;
}

TEST(PruneModel, EveryMethodPrunesBlockLinearsAndLeavesHeadAndEmbedding) {
  for (const char* method : {"magnitude", "wanda", "sparsegpt"}) {
    ModelFile f = tiny_model();
    Transformer m(f);
    const Tensor embd = m.token_embedding().to(DType::F32);
    const Tensor head = m.output().weight().to_dense_f32();
    prune::PruneOptions opt;
    opt.method = method, opt.pattern = SparsityPattern::parse("0.5");
    const prune::PruneReport rep = prune::prune_model(m, tiny_calib(), opt);
    const std::vector<Linear*> ls = m.linears();
    ASSERT_EQ(rep.layers.size(), ls.size() - 1) << method;
    for (const auto& l : rep.layers) {
      EXPECT_NEAR(l.sparsity, 0.5, 0.01) << method << " " << l.name;
      EXPECT_GE(l.output_rel_err, 0) << method;
    }
    for (size_t i = 0; i + 1 < ls.size(); ++i) {
      const Tensor w = ls[i]->weight().to_dense_f32();
      EXPECT_NEAR(prune::zero_fraction(w.f32(), w.numel()), 0.5, 0.01) << method << " " << ls[i]->name();
    }
    const Tensor head_after = m.output().weight().to_dense_f32();
    EXPECT_EQ(std::memcmp(head.data, head_after.data, head.nbytes()), 0) << method;
    const Tensor embd_after = m.token_embedding().to(DType::F32);
    EXPECT_EQ(std::memcmp(embd.data, embd_after.data, embd.nbytes()), 0) << method;
  }
}

TEST(PruneModel, GlobalMagnitudeHitsTheTotalButNotEachLayer) {
  ModelFile f = tiny_model();
  Transformer m(f);
  prune::PruneOptions opt;
  opt.pattern = SparsityPattern::parse("0.6"), opt.global = true;
  const prune::PruneReport rep = prune::prune_model(m, {}, opt);
  EXPECT_EQ(rep.zeros, std::llround(0.6 * double(rep.pruned_params)));
  double lo = 1, hi = 0;
  for (const auto& l : rep.layers) {
    lo = std::min(lo, l.sparsity), hi = std::max(hi, l.sparsity);
    EXPECT_LT(l.output_rel_err, 0);  // no calibration data: no output error
  }
  EXPECT_GT(hi - lo, 0.05);  // output projections are initialised smaller: pruned more
}

TEST(PruneModel, RejectsBadCombinations) {
  ModelFile f = tiny_model();
  Transformer m(f);
  prune::PruneOptions opt;
  opt.pattern = SparsityPattern::parse("0.5");
  opt.method = "wanda";
  EXPECT_THROW(prune::prune_model(m, {}, opt), Error);  // no calibration data
  opt.method = "magnitude", opt.global = true, opt.pattern = SparsityPattern::parse("2:4");
  EXPECT_THROW(prune::prune_model(m, {}, opt), Error);
  opt.method = "obs", opt.global = false;
  EXPECT_THROW(prune::prune_model(m, tiny_calib(), opt), Error);
}

TEST(PruneCli, SparseGpt24OnStories260KWritesGgufAndReport) {
  SHRINK_REQUIRE_ASSET(model, "models/stories260K/stories260K.bin");
  SHRINK_REQUIRE_ASSET(text, "text/gutenberg/valid.txt");
  const std::string dir = test::temp_dir("prune_cli");
  const std::string out = dir + "/s-sparsegpt-2_4.gguf";
  // One thread: on a loaded 2-core machine an OpenMP team costs more than this tiny model computes.
  const auto r = test::run_shrink("prune " + model + " -t 1 --method sparsegpt --sparsity 2:4 --calib " + text +
                                  " --calib-tokens 2048 --seq-len 256 -o " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  // Progress per layer (off a terminal at most one line a second, so only the first is sure to show).
  EXPECT_NE(r.out.find("layer 1/5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sparsegpt done"), std::string::npos) << r.out;
  const ModelFile orig = load_model(model), pruned = load_model(out);
  const Tensor q = pruned.get("blk.0.attn_q.weight").to(DType::F32);
  expect_nm(q, SparsityPattern::parse("2:4"));
  const Tensor e0 = orig.get("token_embd.weight").to(DType::F32), e1 = pruned.get("token_embd.weight").to(DType::F32);
  EXPECT_EQ(std::memcmp(e0.data, e1.data, e0.nbytes()), 0);
  std::ifstream rf(out + ".json");
  const nlohmann::json j = nlohmann::json::parse(rf);
  EXPECT_EQ(j["method"], "sparsegpt");
  EXPECT_EQ(j["sparsity"], "2:4");
  EXPECT_EQ(j["layers"].size(), 5u * 7u);
  EXPECT_NEAR(j["achieved_sparsity"].get<double>(), 0.5, 1e-3);
  for (const auto& l : j["layers"]) EXPECT_GE(l["output_rel_err"].get<double>(), 0);

  const auto bad = test::run_shrink("prune " + model + " --method magnitude --sparsity 4:4 -o " + dir + "/x.gguf");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("0 < N < M"), std::string::npos) << bad.out;
  const auto bad2 = test::run_shrink("prune " + model + " --method wanda --sparsity 0.5 -o " + dir + "/x.gguf");
  EXPECT_EQ(bad2.code, 1);
  EXPECT_NE(bad2.out.find("--calib"), std::string::npos) << bad2.out;
}

}  // namespace
}  // namespace shrink
