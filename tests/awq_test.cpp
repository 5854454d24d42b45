// AWQ (compress/quant/awq.cpp) on a model built to have what the paper's
// method is for: a few salient input channels with large activations. A
// random model is given them without changing its function (norm weight x K
// on a channel, the columns that read it / K), so round to nearest loses
// exactly those channels' precision and AWQ's per-channel scales must win it
// back; and the scales folded into the norms must keep the model's function.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "compress/quant/quantize.h"
#include "model/random_init.h"
#include "test_util.h"

using namespace shrink;

namespace {

constexpr float kSalient = 40.0f;
const int kChannels[] = {3, 17, 40};

// Moves a factor kSalient from the columns of `readers` into `norm`.
void make_salient(ModelFile& f, const std::string& norm, const std::vector<std::string>& readers) {
  Tensor n = f.get(norm).to(DType::F32);
  for (int c : kChannels) n.f32()[c] *= kSalient;
  f.tensors[norm] = n;
  for (const std::string& r : readers) {
    Tensor w = f.get(r).to(DType::F32);
    for (int64_t row = 0; row < w.dim(0); ++row)
      for (int c : kChannels) w.f32()[row * w.dim(1) + c] /= kSalient;
    f.tensors[r] = w;
  }
}

ModelFile salient_model() {
  ModelConfig c = preset_config("tiny");
  c.n_layers = 2;
  ModelFile f = random_model(c, DType::F32, 11);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    make_salient(f, b + "attn_norm.weight", {b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"});
    make_salient(f, b + "ffn_norm.weight", {b + "ffn_gate.weight", b + "ffn_up.weight"});
  }
  return f;
}


struct Result {
  double logit_mse = 0;
  quant::QuantizeReport report;
};

Result quantize_and_measure(const ModelFile& f, const std::string& method, const std::string& target, bool clip) {
  Transformer model(f), base(f);
  calib::CalibSet calib;
  for (uint32_t s = 0; s < 8; ++s) calib.seqs.push_back(test::random_tokens(64, 100 + s));
  quant::QuantizeOptions opt;
  opt.method = method;
  opt.target = quant::QuantTarget::parse(target);
  opt.quantize_head = false;
  opt.awq.clip = clip;
  // Only the Linears that read the salient channels are rounded: the rest
  // (o, down) would add the same error to both methods and blur the comparison.
  for (int l = 0; l < f.config.n_layers; ++l)
    for (const char* k : {".attn_output", ".ffn_down"})
      opt.per_layer["blk." + std::to_string(l) + k] = quant::QuantTarget::parse("f32");
  Result r;
  r.report = quant::quantize_model(model, calib, opt);
  const std::vector<int32_t> eval = test::random_tokens(48, 7);
  const std::vector<float> a = test::all_logits(model, eval), b = test::all_logits(base, eval);
  for (size_t i = 0; i < a.size(); ++i) r.logit_mse += double(a[i] - b[i]) * (a[i] - b[i]) / double(a.size());
  return r;
}

}  // namespace

TEST(Awq, ScalesProtectSalientInputChannels) {
  const ModelFile f = salient_model();
  for (const char* target : {"int3g32", "int4g64", "q4_0"}) {
    const double rtn = quantize_and_measure(f, "rtn", target, false).logit_mse;
    const Result awq = quantize_and_measure(f, "awq", target, false);  // the scale search alone
    EXPECT_LT(awq.logit_mse, 0.5 * rtn) << target;
    std::printf("%s: logit MSE AWQ / RTN = %.3f\n", target, awq.logit_mse / rtn);
    for (const auto& l : awq.report.layers)
      if (l.name.find("attn_q") != std::string::npos || l.name.find("ffn_gate") != std::string::npos) {
        EXPECT_GT(l.awq_alpha, 0.0) << target << " " << l.name;
        EXPECT_LT(l.awq_loss_ratio, 0.5) << target << " " << l.name;
      }
  }
}

// With 8-bit groups the rounding is nearly exact, so what is left is whether
// the scales were folded consistently (norm / s, W * s): the model must still
// compute what it did, AWQ's search notwithstanding.
TEST(Awq, FoldedScalesKeepTheFunction) {
  const ModelFile f = salient_model();
  const Result rtn = quantize_and_measure(f, "rtn", "int8g32", false);
  const Result awq = quantize_and_measure(f, "awq", "int8g32", true);
  EXPECT_LT(awq.logit_mse, 2.0 * rtn.logit_mse + 1e-12);
  bool scaled = false;
  for (const auto& l : awq.report.layers) scaled |= l.awq_alpha > 0;
  EXPECT_TRUE(scaled);
}
