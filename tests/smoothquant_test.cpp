// SmoothQuant's smoothing (compress/actquant/smoothquant.h): the float model
// must compute the same function after the scales are folded (issue 4's
// must-show: to 1e-5), and the activation range must actually shrink.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compress/actquant/smoothquant.h"
#include "model/random_init.h"
#include "test_util.h"

using namespace shrink;

namespace {


// A random model whose norm outputs have a few channels 30x the rest.
ModelFile outlier_model(const std::string& preset) {
  ModelConfig c = preset_config(preset);
  if (preset == "gpt2-124m") c.dim = 64, c.hidden_dim = 256, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 4, c.vocab_size = 512;
  ModelFile f = random_model(c, DType::F32, 5);
  for (int l = 0; l < c.n_layers; ++l)
    for (const char* norm : {"attn_norm.weight", "ffn_norm.weight"}) {
      const std::string name = "blk." + std::to_string(l) + "." + norm;
      Tensor t = f.get(name).to(DType::F32);
      t.f32()[5] *= 30, t.f32()[33] *= -30;
      f.tensors[name] = t;
    }
  return f;
}

}  // namespace

TEST(SmoothQuant, ScalesFollowTheFormula) {
  Tensor w = Tensor::alloc(DType::F32, {2, 3});
  const float wv[] = {0.5f, -2.0f, 0.0f, 0.25f, 1.0f, 0.0f};
  std::copy(wv, wv + 6, w.f32());
  const std::vector<float> s = actquant::smoothing_scales({4.0f, 9.0f, 3.0f}, {&w}, 0.5f);
  EXPECT_FLOAT_EQ(s[0], std::sqrt(4.0f) / std::sqrt(0.5f));
  EXPECT_FLOAT_EQ(s[1], std::sqrt(9.0f) / std::sqrt(2.0f));
  EXPECT_FLOAT_EQ(s[2], 1.0f);  // a column of zero weights: nothing to migrate
  const std::vector<float> s1 = actquant::smoothing_scales({4.0f, 9.0f, 3.0f}, {&w}, 1.0f);
  EXPECT_FLOAT_EQ(s1[1], 9.0f);
}

TEST(SmoothQuant, FoldedModelComputesTheSameFunction) {
  for (const char* preset : {"tiny", "gpt2-124m"})
    for (const bool all : {false, true}) {
      const ModelFile f = outlier_model(preset);
      Transformer base(f), smoothed(f);
      calib::CalibSet calib;
      for (uint32_t s = 0; s < 4; ++s) calib.seqs.push_back(test::random_tokens(32, 50 + s));
      actquant::SmoothOptions opt;
      opt.all_groups = all;
      opt.search_alpha = all;  // the searched alphas must fold as exactly as a given one
      const auto groups = actquant::smooth_model(smoothed, calib, opt);
      // The norm-fed attention and MLP inputs; with all_groups also down (llama: o's v is
      // shared by GQA in "tiny") or o (GPT-2: down comes through GELU).
      ASSERT_EQ(groups.size(), (all ? 3u : 2u) * f.config.n_layers) << preset;
      for (const auto& g : groups) EXPECT_TRUE(all ? g.alpha > 0 && g.alpha < 1 : g.alpha == 0.5f) << g.first;
      for (const auto& g : groups)
        if (g.first.find("down") == std::string::npos && g.first.find("output") == std::string::npos) {
          EXPECT_LT(g.act_max_after, 0.5f * g.act_max_before) << preset << " " << g.first;
        }
      const std::vector<int32_t> toks = test::random_tokens(40, 9);
      const std::vector<float> a = test::all_logits(base, toks), b = test::all_logits(smoothed, toks);
      double diff = 0, scale = 0;
      for (size_t i = 0; i < a.size(); ++i)
        diff = std::max(diff, double(std::fabs(a[i] - b[i]))), scale = std::max(scale, double(std::fabs(a[i])));
      EXPECT_LT(diff, 1e-5 * scale) << preset << (all ? " all groups" : "") << ": max |dlogit| " << diff << " of " << scale;
    }
}
