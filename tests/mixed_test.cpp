// Mixed precision: the allocator keeps to its budget and spends bytes where
// they buy the most KL; sensitivities measured on a model behave.
#include <gtest/gtest.h>

#include "compress/quant/mixed.h"
#include "model/random_init.h"

using namespace shrink;
using quant::LayerSensitivity;
using quant::QuantTarget;

namespace {

LayerSensitivity layer(const std::string& name, std::vector<int64_t> bytes, std::vector<double> kld) {
  LayerSensitivity s;
  s.name = name, s.params = 100;
  for (const char* t : {"q2_k", "q4_k", "q8_0"}) s.targets.push_back(QuantTarget::parse(t));
  s.bytes = std::move(bytes), s.kld = std::move(kld);
  return s;
}

}  // namespace

TEST(MixedPrecision, AllocatorSpendsBudgetOnTheMostSensitiveLayer) {
  // Both layers cost the same; "a" loses far more KL at low bits.
  const std::vector<LayerSensitivity> s = {layer("a", {10, 20, 40}, {1.0, 0.1, 0.0}),
                                           layer("b", {10, 20, 40}, {0.01, 0.001, 0.0})};
  auto pick = quant::allocate_bits(s, 30);  // room for one upgrade of 10 bytes
  EXPECT_EQ(pick.at("a").name(), "q4_k");
  EXPECT_EQ(pick.at("b").name(), "q2_k");
  pick = quant::allocate_bits(s, 20);  // nothing but the cheapest fits
  EXPECT_EQ(pick.at("a").name(), "q2_k");
  EXPECT_EQ(pick.at("b").name(), "q2_k");
  pick = quant::allocate_bits(s, 1000);  // everything fits
  EXPECT_EQ(pick.at("a").name(), "q8_0");
  EXPECT_EQ(pick.at("b").name(), "q8_0");
  pick = quant::allocate_bits(s, 60);  // a to q8_0 (30 more bytes) beats anything for b
  int64_t total = 0;
  for (const auto& l : s)
    for (size_t k = 0; k < l.targets.size(); ++k)
      if (l.targets[k].name() == pick.at(l.name).name()) total += l.bytes[k];
  EXPECT_LE(total, 60);
  EXPECT_EQ(pick.at("a").name(), "q8_0");
}

TEST(MixedPrecision, SensitivityIsSmallerWithMoreBitsAndLeavesTheModelUnchanged) {
  ModelConfig c = preset_config("tiny");
  c.dim = 256, c.hidden_dim = 256, c.n_heads = 4, c.n_kv_heads = 4, c.head_dim = 0, c.n_layers = 2, c.vocab_size = 256;
  c.validate("test");
  ModelFile f = random_model(c, DType::F32, 3);
  Transformer m(f);
  calib::CalibSet calib;
  for (int s = 0; s < 2; ++s) {
    std::vector<int32_t> seq(32);
    for (size_t i = 0; i < seq.size(); ++i) seq[i] = static_cast<int32_t>((i * 37 + s * 11) % 256);
    calib.seqs.push_back(seq);
  }
  std::vector<std::string> before;
  for (Linear* l : m.linears()) before.push_back(l->weight().kind());
  quant::QuantizeOptions opt;
  const auto ladder = quant::default_ladder(QuantTarget::parse("q4_k"));
  const auto sens = quant::measure_sensitivity(m, calib, 64, ladder, opt);
  ASSERT_EQ(sens.size(), m.linears().size());  // 7 per block and the head
  for (const auto& s : sens) {
    ASSERT_EQ(s.kld.size(), ladder.size());
    for (double k : s.kld) EXPECT_GE(k, 0);
    EXPECT_GT(s.kld.front(), s.kld.back()) << s.name;  // Q2_K loses more than Q8_0
    EXPECT_LT(s.bytes.front(), s.bytes.back()) << s.name;
  }
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(m.linears()[i]->weight().kind(), before[i]);
}
