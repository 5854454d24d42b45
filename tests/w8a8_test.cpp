// W8A8 Linears (model/int8_weight.h) and the activation-quantization methods
// (compress/actquant/w8a8.h) on random models: the representation computes
// what its dequantized weights and rounded activations do; LLM.int8()'s f32
// columns rescue an outlier input; and where norm outputs carry outlier
// channels, SmoothQuant's static W8A8 beats plain static W8A8 (its premise).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compress/actquant/w8a8.h"
#include "core/error.h"
#include "model/int8_weight.h"
#include "model/random_init.h"
#include "test_util.h"

using namespace shrink;

namespace {

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor t = Tensor::alloc(DType::F32, {rows, cols});
  for (int64_t i = 0; i < rows * cols; ++i) t.f32()[i] = nd(rng);
  return t;
}

// y = x W^T in double.
std::vector<double> product(const float* x, const Tensor& w, int64_t n) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<double> y(size_t(n * rows));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += double(x[i * cols + c]) * w.f32()[r * cols + c];
      y[i * rows + r] = s;
    }
  return y;
}

double rel_err(const std::vector<float>& y, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) num += (y[i] - ref[i]) * (y[i] - ref[i]), den += ref[i] * ref[i];
  return std::sqrt(num / den);
}

double logit_mse(Transformer& a, Transformer& b) {
  const std::vector<int32_t> toks = test::random_tokens(48, 7);
  const std::vector<float> x = test::all_logits(a, toks), y = test::all_logits(b, toks);
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i) e += double(x[i] - y[i]) * (x[i] - y[i]) / double(x.size());
  return e;
}

calib::CalibSet random_calib() {
  calib::CalibSet c;
  for (uint32_t s = 0; s < 8; ++s) c.seqs.push_back(test::random_tokens(64, 100 + s));
  return c;
}

}  // namespace

TEST(Int8Weight, MatchesTheDequantizedProductForEveryActivationMode) {
  const Tensor w = random_matrix(37, 173, 1), x = random_matrix(5, 173, 2);
  for (const Int8Activations act : {Int8Activations{0, 0}, Int8Activations{4.0f / 127, 0}, Int8Activations{0, 6.0f}}) {
    const Int8Weight q(w, act);
    EXPECT_EQ(q.bytes(), 37 * 173 + 37 * 8);
    // The weight part of the error: per-channel absmax / 127 rounding.
    const Tensor d = q.to_dense_f32();
    for (int64_t r = 0; r < 37; ++r) {
      float amax = 0;
      for (int64_t c = 0; c < 173; ++c) amax = std::max(amax, std::fabs(w.f32()[r * 173 + c]));
      for (int64_t c = 0; c < 173; ++c) EXPECT_LE(std::fabs(d.f32()[r * 173 + c] - w.f32()[r * 173 + c]), amax / 254 * 1.0001f);
    }
    std::vector<float> y(5 * 37);
    q.matmul(x.f32(), y.data(), 5);
    EXPECT_LT(rel_err(y, product(x.f32(), w, 5)), 0.02) << q.kind();
  }
}

TEST(Int8Weight, OutlierColumnsStayExactInLlmInt8) {
  const Tensor w = random_matrix(64, 256, 3);
  Tensor x = random_matrix(4, 256, 4);
  for (int64_t i = 0; i < 4; ++i) x.f32()[i * 256 + 17] = 60.0f * (i % 2 ? 1 : -1);  // one outlier feature
  const std::vector<double> ref = product(x.f32(), w, 4);
  std::vector<float> y_tok(4 * 64), y_llm(4 * 64);
  Int8Weight(w, {0, 0}).matmul(x.f32(), y_tok.data(), 4);
  Int8Weight(w, {0, 6.0f}).matmul(x.f32(), y_llm.data(), 4);
  // Per-token scales are set by the outlier: the other 255 features round to a few levels.
  EXPECT_LT(rel_err(y_llm, ref), 0.25 * rel_err(y_tok, ref));
}

TEST(ActQuant, EveryBlockLinearBecomesInt8AndTheHeadStays) {
  ModelConfig c = preset_config("tiny");
  const ModelFile f = random_model(c, DType::F32, 9);
  for (const char* method : {"dynamic", "w8a8", "smoothquant", "llm-int8"}) {
    Transformer model(f), base(f);
    actquant::ActQuantOptions opt;
    opt.method = method;
    const auto rep = actquant::quantize_activations(model, random_calib(), opt);
    EXPECT_EQ(rep.layers.size(), size_t(7 * c.n_layers)) << method;
    for (const auto& l : rep.layers) {
      EXPECT_NE(l.kind.find(std::string(method) == "llm-int8" ? "llm.int8" : "w8a8"), std::string::npos) << l.name;
      if (std::string(method) == "w8a8") {
        EXPECT_GT(l.act_scale, 0) << l.name;
      }
    }
    EXPECT_EQ(model.output().weight().kind(), base.output().weight().kind());
    EXPECT_LT(logit_mse(model, base), 1e-3) << method;
  }
}

TEST(ActQuant, SmoothQuantBeatsStaticW8A8WhereNormOutputsHaveOutliers) {
  ModelConfig c = preset_config("tiny");
  ModelFile f = random_model(c, DType::F32, 5);
  for (int l = 0; l < c.n_layers; ++l)
    for (const char* norm : {"attn_norm.weight", "ffn_norm.weight"}) {
      const std::string name = "blk." + std::to_string(l) + "." + norm;
      Tensor t = f.get(name).to(DType::F32);
      t.f32()[5] *= 60, t.f32()[33] *= -60;
      f.tensors[name] = t;
    }
  double mse[2];
  for (int k = 0; k < 2; ++k) {
    Transformer model(f), base(f);
    actquant::ActQuantOptions opt;
    opt.method = k == 0 ? "w8a8" : "smoothquant";
    actquant::quantize_activations(model, random_calib(), opt);
    mse[k] = logit_mse(model, base);
  }
  EXPECT_LT(mse[1], 0.5 * mse[0]) << "w8a8 " << mse[0] << " smoothquant " << mse[1];
}

TEST(ActQuant, RejectsBadOptions) {
  const ModelFile f = random_model(preset_config("tiny"), DType::F32, 9);
  Transformer model(f);
  actquant::ActQuantOptions opt;
  opt.method = "w8a8";
  EXPECT_THROW(actquant::quantize_activations(model, {}, opt), Error);  // no calibration
  opt.method = "w4a4";
  EXPECT_THROW(actquant::quantize_activations(model, random_calib(), opt), Error);
  opt.method = "w8a8";
  opt.observer = actquant::parse_observer("minmax");
  opt.observer.symmetric = false;
  EXPECT_THROW(actquant::quantize_activations(model, random_calib(), opt), Error);
}
