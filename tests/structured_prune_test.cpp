// Structured pruning (compress/prune/structured.h): removing a head, a channel
// or a layer computes exactly what the original model computes with that
// group's output weights zeroed; non-uniform models survive GGUF and HF round
// trips; the ratio hits the parameter count; every criterion ranks a planted
// dead group last; `shrink prune --structured` on stories260K.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "compress/prune/structured.h"
#include "core/error.h"
#include "model/random_init.h"
#include "test_util.h"

namespace shrink {
namespace {

using prune::Importance;
using prune::StructKind;
using prune::StructuredPlan;

ModelConfig small_config(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.dim = 64, c.hidden_dim = 96, c.n_layers = 3, c.n_heads = 4, c.n_kv_heads = arch == Arch::GPT2 ? 4 : 2;
  c.vocab_size = 300, c.max_seq_len = 64;
  c.validate("test");
  return c;
}

// A random model whose block matrices are scaled up, so that every head and
// channel changes the logits well above float rounding.
ModelFile small_model(Arch arch, uint64_t seed = 7) {
  ModelFile m = random_model(small_config(arch), DType::F32, seed);
  for (auto& [name, t] : m.tensors)
    if (name.rfind("blk.", 0) == 0 && t.ndim() == 2)
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] *= 8.0f;
  return m;
}

std::vector<int32_t> tokens(int n, int vocab, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % vocab);
  return t;
}

std::vector<float> logits(const ModelFile& m, KvType kv = KvType::F32, int n = 12) {
  Transformer t(m);
  KVCache cache = t.new_cache(n, kv);
  std::vector<float> out(size_t(n) * m.config.vocab_size);
  const auto tok = tokens(n, m.config.vocab_size);
  // Prefill then one decode step: both paths of the forward.
  t.forward(tok.data(), n - 1, cache, out.data(), true);
  t.forward(tok.data() + n - 1, 1, cache, out.data() + size_t(n - 1) * m.config.vocab_size, false);
  return out;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

void zero_cols(ModelFile& m, const std::string& name, int64_t c0, int64_t c1) {
  Tensor t = m.get(name).to(DType::F32);  // a copy, so that the original file's tensor stays
  Tensor z = Tensor::alloc(DType::F32, t.shape);
  std::copy(t.f32(), t.f32() + t.numel(), z.f32());
  for (int64_t r = 0; r < z.dim(0); ++r)
    for (int64_t c = c0; c < c1; ++c) z.f32()[r * z.dim(1) + c] = 0;
  m.tensors[name] = z;
}

StructuredPlan plan_of(const ModelConfig& c, StructKind k, std::vector<std::vector<int>> removed) {
  StructuredPlan p;
  p.kind = k;
  p.removed = std::move(removed);
  p.removed.resize(c.n_layers);
  return p;
}

// Removal equals zeroing, compared on the same forward; the zeroing must also
// matter (else the comparison proves nothing).
void expect_removal_equals_zeroing(const ModelFile& m, const StructuredPlan& plan, const ModelFile& zeroed,
                                   KvType kv = KvType::F32) {
  const ModelFile pruned = prune::remove_groups(m, plan);
  const auto a = logits(pruned, kv), b = logits(zeroed, kv), orig = logits(m, kv);
  EXPECT_LT(max_abs_diff(a, b), 2e-5f);
  EXPECT_GT(max_abs_diff(orig, b), 1e-2f) << "the removed group does not change the output: the test is too weak";
}

TEST(StructuredPrune, RemovingAKvGroupEqualsZeroingItsOutputColumns) {
  for (Arch arch : {Arch::Llama, Arch::GPT2}) {
    const ModelFile m = small_model(arch);
    const ModelConfig& c = m.config;
    const int r = c.n_heads / c.n_kv_heads;  // llama: 2 query heads per KV group; gpt2: 1
    ModelFile zeroed = m;
    zero_cols(zeroed, "blk.1.attn_output.weight", 1 * r * c.head_dim, 2 * r * c.head_dim);
    for (KvType kv : {KvType::F32, KvType::Int8})
      expect_removal_equals_zeroing(m, plan_of(c, StructKind::Heads, {{}, {1}}), zeroed, kv);
  }
}

TEST(StructuredPrune, RemovingChannelsEqualsZeroingTheirDownColumns) {
  for (Arch arch : {Arch::Llama, Arch::GPT2}) {
    const ModelFile m = small_model(arch);
    ModelFile zeroed = m;
    for (int ch : {3, 10, 95}) zero_cols(zeroed, "blk.0.ffn_down.weight", ch, ch + 1);
    expect_removal_equals_zeroing(m, plan_of(m.config, StructKind::Channels, {{3, 10, 95}}), zeroed);
  }
}

TEST(StructuredPrune, RemovingALayerEqualsZeroingItsOutputProjections) {
  for (Arch arch : {Arch::Llama, Arch::GPT2}) {
    ModelFile m = small_model(arch);
    ModelFile zeroed = m;
    for (const char* n : {"blk.1.attn_output.weight", "blk.1.ffn_down.weight"})
      zero_cols(zeroed, n, 0, zeroed.get(n).dim(1));
    for (const char* n : {"blk.1.attn_output.bias", "blk.1.ffn_down.bias"})
      if (zeroed.find(n)) zeroed.tensors[n] = Tensor::zeros(DType::F32, zeroed.get(n).shape);
    const ModelFile pruned = prune::remove_groups(m, plan_of(m.config, StructKind::Layers, {{}, {0}}));
    EXPECT_EQ(pruned.config.n_layers, 2);
    EXPECT_TRUE(pruned.find("blk.1.attn_output.weight") && !pruned.find("blk.2.attn_output.weight"));
    expect_removal_equals_zeroing(m, plan_of(m.config, StructKind::Layers, {{}, {0}}), zeroed);
  }
}

// Layer 0 keeps 1 KV group (2 heads) and 60 channels, layer 1 keeps 2 and 96, layer 2 keeps 1 and 30.
ModelFile non_uniform_model() {
  const ModelFile m = small_model(Arch::Llama);
  const ModelFile h = prune::remove_groups(m, plan_of(m.config, StructKind::Heads, {{0}, {}, {1}}));
  std::vector<int> ch0, ch2;
  for (int i = 0; i < 36; ++i) ch0.push_back(i * 2);
  for (int i = 0; i < 66; ++i) ch2.push_back(i + 30);
  return prune::remove_groups(h, plan_of(h.config, StructKind::Channels, {ch0, {}, ch2}));
}

TEST(StructuredPrune, NonUniformModelRoundTripsThroughGgufAndHf) {
  const ModelFile m = non_uniform_model();
  EXPECT_EQ(m.config.layer_heads, (std::vector<int>{2, 4, 2}));
  EXPECT_EQ(m.config.layer_kv_heads, (std::vector<int>{1, 2, 1}));
  EXPECT_EQ(m.config.layer_hidden, (std::vector<int>{60, 96, 30}));
  const auto ref = logits(m);
  const std::string dir = test::temp_dir("structured_rt");
  save_gguf_model(m, dir + "/m.gguf");
  const ModelFile g = load_gguf_model(dir + "/m.gguf");
  EXPECT_EQ(g.config.layer_heads, m.config.layer_heads);
  EXPECT_EQ(g.config.layer_kv_heads, m.config.layer_kv_heads);
  EXPECT_EQ(g.config.layer_hidden, m.config.layer_hidden);
  EXPECT_EQ(g.config.head_dim, m.config.head_dim);
  EXPECT_EQ(max_abs_diff(logits(g), ref), 0.0f);
  save_hf(m, dir + "/hf", DType::F32);
  const ModelFile h = load_hf(dir + "/hf");
  EXPECT_EQ(h.config.layer_hidden, m.config.layer_hidden);
  EXPECT_EQ(max_abs_diff(logits(h), ref), 0.0f);
  EXPECT_EQ(g.config.parameter_count(), 64 * 300 + 64 + 3 * 2 * 64 + 64 * 300 +
                                            2 * 64 * 16 * (2 * 2 + 2 * 1) + 64 * 16 * (2 * 4 + 2 * 2) + 3 * 64 * (60 + 96 + 30));
  std::filesystem::remove_all(dir);
}

TEST(StructuredPrune, RatioRemovesTheRequestedShareOfParameters) {
  const ModelFile m = small_model(Arch::Llama);
  for (StructKind k : {StructKind::Heads, StructKind::Channels}) {
    const prune::LayerScores s = prune::weight_norm_scores(m, k, Importance::L2);
    for (bool global : {false, true}) {
      for (double ratio : {0.1, 0.25, 0.5}) {
        const StructuredPlan p = prune::plan_removal(m.config, k, s, ratio, global);
        const ModelFile out = prune::remove_groups(m, p);
        const int64_t removed = m.config.parameter_count() - out.config.parameter_count();
        EXPECT_EQ(removed, p.removed_params);
        // Within one group per layer of the target (groups are indivisible).
        const double slack = 0.5 * double(prune::group_params(m.config, k, 0));
        EXPECT_NEAR(double(removed), ratio * double(p.prunable_params), slack + 1) << int(k) << " " << global << " " << ratio;
      }
    }
  }
  const StructuredPlan l = prune::plan_removal(m.config, StructKind::Layers, {{0.3}, {0.1}, {0.2}}, 0.34, false);
  EXPECT_EQ(l.removed[1], std::vector<int>{0});
  EXPECT_EQ(l.removed_groups(), 1);
}

TEST(StructuredPrune, MultipleOfRoundsEveryLayersKeptWidthDown) {
  const ModelFile m = small_model(Arch::Llama);
  const prune::LayerScores s = prune::weight_norm_scores(m, StructKind::Channels, Importance::L2);
  for (bool global : {false, true}) {
    StructuredPlan p = prune::plan_removal(m.config, StructKind::Channels, s, 0.2, global);
    const StructuredPlan before = p;
    prune::round_kept_groups(m.config, s, 32, p);
    const ModelFile out = prune::remove_groups(m, p);
    for (int l = 0; l < 3; ++l) {
      EXPECT_EQ(out.config.ffn_dim(l), 64);  // 96 - 19 or 20 = 76 or 77 -> 64
      for (int g : before.removed[l]) EXPECT_TRUE(std::binary_search(p.removed[l].begin(), p.removed[l].end(), g));
    }
    EXPECT_EQ(m.config.parameter_count() - out.config.parameter_count(), p.removed_params);
  }
}

calib::CalibSet random_calib(int vocab) {
  calib::CalibSet c;
  for (uint32_t s = 0; s < 4; ++s) c.seqs.push_back(tokens(24, vocab, 100 + s));
  return c;
}

void scale_rows(ModelFile& m, const std::string& name, int64_t r0, int64_t r1, float f) {
  Tensor& t = m.tensors.at(name);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < t.dim(1); ++c) t.f32()[r * t.dim(1) + c] *= f;
}

void scale_cols(ModelFile& m, const std::string& name, int64_t c0, int64_t c1, float f) {
  Tensor& t = m.tensors.at(name);
  for (int64_t r = 0; r < t.dim(0); ++r)
    for (int64_t c = c0; c < c1; ++c) t.f32()[r * t.dim(1) + c] *= f;
}

int argmin(const std::vector<double>& v) { return int(std::min_element(v.begin(), v.end()) - v.begin()); }

// Every importance criterion, for heads and for FFN channels, ranks the planted
// near-dead group last: head `dead_head` of layer 1, channel `dead_channel` of layer 2.
void expect_every_criterion_ranks_last(const ModelFile& m, int dead_head, int dead_channel) {
  const calib::CalibSet calib = random_calib(m.config.vocab_size);
  for (Importance imp : {Importance::L1, Importance::L2, Importance::Activation, Importance::Taylor}) {
    for (StructKind k : {StructKind::Heads, StructKind::Channels}) {
      prune::LayerScores s;
      if (imp == Importance::L1 || imp == Importance::L2) {
        s = prune::weight_norm_scores(m, k, imp);
      } else if (imp == Importance::Taylor) {
        s = prune::taylor_scores(m, calib, k);
      } else {
        Transformer t(m);
        s = prune::activation_scores(t, calib, k);
      }
      const int layer = k == StructKind::Heads ? 1 : 2, dead = k == StructKind::Heads ? dead_head : dead_channel;
      ASSERT_EQ(int(s[layer].size()), prune::group_count(m.config, k, layer));
      EXPECT_EQ(argmin(s[layer]), dead) << prune::importance_name(imp) << " " << prune::struct_kind_name(k);
    }
  }
}

TEST(StructuredPrune, EveryCriterionRanksAPlantedDeadGroupLast) {
  ModelFile m = small_model(Arch::Llama);
  const int64_t hd = m.config.head_dim;
  // KV group 1 of layer 1 (query heads 2, 3) and FFN channel 17 of layer 2 are nearly dead.
  for (const char* n : {"blk.1.attn_k.weight", "blk.1.attn_v.weight"}) scale_rows(m, n, hd, 2 * hd, 1e-3f);
  scale_rows(m, "blk.1.attn_q.weight", 2 * hd, 4 * hd, 1e-3f);
  scale_cols(m, "blk.1.attn_output.weight", 2 * hd, 4 * hd, 1e-3f);
  for (const char* n : {"blk.2.ffn_gate.weight", "blk.2.ffn_up.weight"}) scale_rows(m, n, 17, 18, 1e-3f);
  scale_cols(m, "blk.2.ffn_down.weight", 17, 18, 1e-3f);
  expect_every_criterion_ranks_last(m, 1, 17);
}

// The same on GPT-2: a head's rows in each third of the fused qkv, and its attn_output columns.
TEST(StructuredPrune, EveryCriterionRanksAPlantedDeadGroupLastOnGpt2) {
  ModelFile m = small_model(Arch::GPT2);
  const int64_t hd = m.config.head_dim, qd = m.config.q_dim();
  for (int part = 0; part < 3; ++part) scale_rows(m, "blk.1.attn_qkv.weight", part * qd + 2 * hd, part * qd + 3 * hd, 1e-3f);
  scale_cols(m, "blk.1.attn_output.weight", 2 * hd, 3 * hd, 1e-3f);
  scale_rows(m, "blk.2.ffn_up.weight", 17, 18, 1e-3f);
  scale_cols(m, "blk.2.ffn_down.weight", 17, 18, 1e-3f);
  expect_every_criterion_ranks_last(m, 2, 17);
}

TEST(StructuredPrune, BlockInfluenceRanksAnIdentityBlockLast) {
  ModelFile m = small_model(Arch::Llama);
  scale_cols(m, "blk.1.attn_output.weight", 0, m.config.dim, 0.0f);  // block 1 adds nothing: out == in
  scale_cols(m, "blk.1.ffn_down.weight", 0, m.config.hidden_dim, 0.0f);
  Transformer t(m);
  const prune::LayerScores s = prune::block_influence(t, random_calib(m.config.vocab_size));
  EXPECT_NEAR(s[1][0], 0.0, 1e-6);
  EXPECT_GT(s[0][0], 1e-3);
  EXPECT_GT(s[2][0], 1e-3);
}

TEST(StructuredPrune, RejectsQuantizedWeightsAndBadRatios) {
  const ModelFile m = small_model(Arch::Llama);
  const prune::LayerScores s = prune::weight_norm_scores(m, StructKind::Channels, Importance::L1);
  EXPECT_THROW(prune::plan_removal(m.config, StructKind::Channels, s, 1.0, false), Error);
  EXPECT_THROW(prune::plan_removal(m.config, StructKind::Layers, {{1}, {2}, {3}}, 0, false, 3), Error);
  ModelFile q = m;
  q.tensors["blk.0.ffn_up.weight"] = m.get("blk.0.ffn_up.weight").to(DType::F16).to(DType::F32);
  q.tensors["blk.0.ffn_up.weight"].dtype = DType::I8;  // a non-float weight
  EXPECT_THROW(prune::remove_groups(q, plan_of(m.config, StructKind::Channels, {{1}})), Error);
}

TEST(StructuredPrune, CliPrunesStories260K) {
  SHRINK_REQUIRE_ASSET(model, "models/stories260K/stories260K.bin");
  SHRINK_REQUIRE_ASSET(text, "text/gutenberg/valid.txt");
  const std::string dir = test::temp_dir("structured_cli");
  const std::string out = dir + "/s.gguf";
  const std::string cmd = std::string(SHRINK_BINARY) + " prune " + model + " --structured heads --ratio 0.25 --importance taylor --calib " +
                          text + " --calib-tokens 1024 --seq-len 128 -o " + out + " 2>/dev/null >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const ModelFile f = load_model(out);
  EXPECT_EQ(f.config.n_kv_heads * 4, 4 * 3) << f.config.summary();  // 4 KV groups -> 3 kept in every layer
  std::ifstream rep(out + ".json");
  const nlohmann::json j = nlohmann::json::parse(rep);
  EXPECT_EQ(j["params_after"].get<int64_t>(), f.config.parameter_count());
  EXPECT_LT(j["params_after"].get<int64_t>(), j["params_before"].get<int64_t>());
  logits(f);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shrink
