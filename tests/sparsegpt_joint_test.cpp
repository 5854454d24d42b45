// SparseGPT's joint sparsity + quantization (compress/prune/sparsegpt.h,
// SparseGptOptions::quant; Frantar & Alistarh 2023 §3.5): the mask holds and
// every kept weight is on the target's grid; on correlated inputs the joint
// sweep beats pruning and quantizing separately; with H = I it reduces to
// magnitude masking followed by rounding on GPTQ's grid.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compress/calib/obs.h"
#include "compress/calib/stats.h"
#include "compress/prune/prune.h"
#include "compress/prune/sparsegpt.h"
#include "compress/quant/gptq.h"
#include "compress/quant/target.h"
#include "core/error.h"
#include "io/model_file.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_util.h"

namespace shrink {
namespace {

using prune::MaskScope;
using prune::SparsityPattern;
using quant::QuantTarget;

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  Tensor w = Tensor::alloc(DType::F32, {rows, cols});
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = nd(rng);
  return w;
}

// Inputs with uneven column scales, correlated through a shared mixing matrix
// (the shape of LLM activations; the same construction as prune_test.cpp).
std::vector<float> correlated_hessian(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> mix(static_cast<size_t>(cols * cols)), scale(static_cast<size_t>(cols)), x(static_cast<size_t>(n * cols));
  for (auto& v : mix) v = nd(rng) * 0.3f;
  for (int64_t c = 0; c < cols; ++c) mix[c * cols + c] += 1.0f, scale[c] = std::exp(1.2f * nd(rng));
  std::vector<float> z(static_cast<size_t>(cols));
  for (int64_t t = 0; t < n; ++t) {
    for (auto& v : z) v = nd(rng);
    for (int64_t c = 0; c < cols; ++c) {
      double s = 0;
      for (int64_t k = 0; k < cols; ++k) s += z[k] * mix[k * cols + c];
      x[t * cols + c] = float(s) * scale[c];
    }
  }
  calib::Hessian h(cols);
  h.add(x.data(), n);
  return h.matrix();
}

prune::SparseGptResult joint(const Tensor& w, const std::vector<float>& h, const SparsityPattern& p, const char* type,
                             float damp = 0.01f, int64_t block = 128) {
  prune::SparseGptOptions o;
  o.quant = QuantTarget::parse(type);
  o.damp = damp, o.block = block;
  return prune::sparsegpt_prune(w, h, p, o);
}

// At least M - N zeros in every group of M of a row (kept weights may also round to 0).
void expect_nm(const Tensor& t, int n, int m) {
  const int64_t rows = t.dim(0), cols = t.dim(1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += m) {
      int zeros = 0;
      for (int64_t c = c0; c < std::min<int64_t>(c0 + m, cols); ++c) zeros += t.f32()[r * cols + c] == 0.0f;
      ASSERT_GE(zeros, m - n) << "row " << r << " group at " << c0;
    }
}

int64_t zeros(const Tensor& t) {
  int64_t z = 0;
  for (int64_t i = 0; i < t.numel(); ++i) z += t.f32()[i] == 0.0f;
  return z;
}

// Inputs of low rank (k latent factors plus 5% noise, uneven column scales):
// strongly correlated columns, so pruning a weight moves the kept weights of
// the next columns by a lot — the situation of teacher-9M's attn_output.
std::vector<float> low_rank_hessian(int64_t n, int64_t cols, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> a(static_cast<size_t>(k * cols)), scale(static_cast<size_t>(cols)), x(static_cast<size_t>(n * cols));
  for (auto& v : a) v = nd(rng);
  for (auto& v : scale) v = std::exp(nd(rng));
  std::vector<float> z(static_cast<size_t>(k));
  for (int64_t t = 0; t < n; ++t) {
    for (auto& v : z) v = nd(rng);
    for (int64_t c = 0; c < cols; ++c) {
      double s = 0.05 * nd(rng);
      for (int64_t j = 0; j < k; ++j) s += z[j] * a[j * cols + c];
      x[t * cols + c] = float(s) * scale[c];
    }
  }
  calib::Hessian h(cols);
  h.add(x.data(), n);
  return h.matrix();
}

// A column "quantizer" that does not round (an identity grid), chunked like Q8_0.
class IdentityColumns : public quant::ColumnQuantizer {
 public:
  IdentityColumns(int64_t rows, int64_t cols) : w_(Tensor::alloc(DType::F32, {rows, cols})) {
    rows_ = rows, cols_ = cols, chunk_ = 32;
  }
  void choose(const float*, int64_t, const float*) override {}
  void round_column(int64_t c, const float* w, float* q) override {
    for (int64_t r = 0; r < rows_; ++r) q[r] = w_.f32()[r * cols_ + c] = w[r];
  }
  std::shared_ptr<WeightRepr> finish() override { return make_weight(w_); }

 private:
  Tensor w_;
};

// Q8_0's column quantizer, counting the kept weights it has to clamp: a value
// further than half a step from its rounded one lies outside the block's range
// (d = amax/127 over the values choose() saw).
class ClampCountingQ8_0 : public quant::ColumnQuantizer {
 public:
  ClampCountingQ8_0(int64_t rows, int64_t cols, int64_t* clamped, int64_t* kept)
      : inner_(quant::ColumnQuantizer::make(QuantTarget::parse("q8_0"), rows, cols)), step_(size_t(rows)),
        clamped_(clamped), kept_(kept) {
    rows_ = rows, cols_ = cols, chunk_ = inner_->chunk();
  }
  void choose(const float* wt, int64_t c0, const float* imp) override {
    inner_->choose(wt, c0, imp);
    for (int64_t r = 0; r < rows_; ++r) {
      float amax = 0;
      for (int64_t j = 0; j < chunk_; ++j) amax = std::max(amax, std::fabs(wt[(c0 + j) * rows_ + r]));
      step_[r] = amax / 127;
    }
  }
  void round_column(int64_t c, const float* w, float* q) override {
    inner_->round_column(c, w, q);
    for (int64_t r = 0; r < rows_; ++r)
      if (w[r] != 0.0f) ++*kept_, *clamped_ += std::fabs(w[r] - q[r]) > 0.502f * step_[r];
  }
  std::shared_ptr<WeightRepr> finish() override { return inner_->finish(); }

 private:
  std::unique_ptr<quant::ColumnQuantizer> inner_;
  std::vector<float> step_;
  int64_t *clamped_, *kept_;
};

}  // namespace

// The sweep's replacement values are exactly what the stored weight decodes to
// (so every kept weight is a grid point of its block/group), and the pattern holds.
TEST(SparseGptJoint, MaskHoldsAndKeptWeightsAreOnTheGrid) {
  const int64_t rows = 16, cols = 128;
  const Tensor w = random_matrix(rows, cols, 3);
  const std::vector<float> h = correlated_hessian(512, cols, 4);
  for (const char* type : {"q4_0", "q8_0", "q5_0", "q6_k", "q3_k", "int4g128", "int4g32sym", "nf4g64", "int8ch"})
    for (const char* pat : {"2:4", "4:8", "0.5", "0.7"}) {
      SCOPED_TRACE(std::string(type) + " " + pat);
      const SparsityPattern p = SparsityPattern::parse(pat);
      if (std::string(type) == "q6_k" || std::string(type) == "q3_k") {
        // 256-wide K blocks need 256 columns.
        const Tensor w2 = random_matrix(rows, 256, 5);
        const auto r = joint(w2, correlated_hessian(768, 256, 6), p, type);
        const Tensor dq = r.quantized->to_dense_f32();
        for (int64_t i = 0; i < dq.numel(); ++i) ASSERT_EQ(dq.f32()[i], r.weight.f32()[i]) << i;
        if (p.is_nm()) expect_nm(dq, p.n, p.m);
        else EXPECT_GE(zeros(dq), std::llround(p.ratio * double(dq.numel())));
        continue;
      }
      const auto r = joint(w, h, p, type);
      ASSERT_TRUE(r.quantized);
      const Tensor dq = r.quantized->to_dense_f32();
      for (int64_t i = 0; i < dq.numel(); ++i) ASSERT_EQ(dq.f32()[i], r.weight.f32()[i]) << i;
      // Rounding is idempotent on the stored values: re-quantizing them with
      // the same grid (RTN of a grid point) cannot move a kept weight.
      if (p.is_nm()) expect_nm(dq, p.n, p.m);
      else EXPECT_GE(zeros(dq), std::llround(p.ratio * double(dq.numel())));
    }
}

TEST(SparseGptJoint, RefusesGridsWithoutAnExactZero) {
  const Tensor w = random_matrix(4, 256, 1);
  const std::vector<float> h = correlated_hessian(512, 256, 2);
  for (const char* type : {"q4_1", "q5_1", "q2_k", "q4_k", "q5_k", "onebit"}) {
    EXPECT_FALSE(prune::joint_zero_exact(QuantTarget::parse(type))) << type;
    EXPECT_THROW(joint(w, h, SparsityPattern::parse("2:4"), type), Error) << type;
  }
  EXPECT_TRUE(prune::joint_zero_exact(QuantTarget::parse("f16")));
}

// H = I (no dampening): U = I, nothing is propagated, the OBS saliency is w²,
// so the result must be the magnitude mask (per row group for N:M, per lazy
// block for unstructured) with the kept weights rounded on the grid GPTQ's
// column quantizer fixes from the masked weights (the look-ahead of a chunk is
// its masked weights when nothing is propagated).
TEST(SparseGptJoint, IdentityHessianIsMagnitudeMaskThenGridRounding) {
  const int64_t rows = 12, cols = 64;
  const Tensor w = random_matrix(rows, cols, 9);
  std::vector<float> h(size_t(cols * cols), 0.0f);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0f;
  for (const char* type : {"q4_0", "int4g32"})
    for (const char* pat : {"2:4", "0.5"}) {
      SCOPED_TRACE(std::string(type) + " " + pat);
      const SparsityPattern p = SparsityPattern::parse(pat);
      const Tensor masked = prune::prune_by_score(w, nullptr, p, p.is_nm() ? MaskScope::Row : MaskScope::Layer);
      auto cq = quant::ColumnQuantizer::make(QuantTarget::parse(type), rows, cols);
      const std::vector<float> mt = calib::to_column_major(masked.f32(), rows, cols);
      std::vector<float> q(static_cast<size_t>(rows));
      Tensor expect = Tensor::alloc(DType::F32, {rows, cols});
      for (int64_t c = 0; c < cols; ++c) {
        if (c % cq->chunk() == 0) cq->choose(mt.data(), c, nullptr);
        cq->round_column(c, mt.data() + c * rows, q.data());
        for (int64_t r = 0; r < rows; ++r) expect.f32()[r * cols + c] = q[r];
      }
      const Tensor got = joint(w, h, p, type, 0.0f, cols).quantized->to_dense_f32();
      for (int64_t i = 0; i < got.numel(); ++i) ASSERT_EQ(got.f32()[i], expect.f32()[i]) << i;
    }
}

// On one layer: quantizing inside the sweep (each column's rounding error
// compensated like its pruning error) beats SparseGPT followed by RTN. A
// separate GPTQ pass after SparseGPT does not keep the mask (its error feedback
// refills pruned weights: ~30% zeros left of 50%), so it is a denser model and
// its output error is a little lower (measured: 0.1-12%); the test pins that it
// stays within 15% and that it loses the sparsity, rather than claiming a win.
TEST(SparseGptJoint, BeatsPruneThenQuantizeOnCorrelatedInputs) {
  const int64_t rows = 32, cols = 256;
  const Tensor w = random_matrix(rows, cols, 11);
  const std::vector<float> h = correlated_hessian(2048, cols, 12);
  for (const char* type : {"q4_0", "int4g128", "q8_0"})
    for (const char* pat : {"0.5", "2:4"}) {
      const SparsityPattern p = SparsityPattern::parse(pat);
      const QuantTarget t = QuantTarget::parse(type);
      const Tensor pruned = prune::sparsegpt_prune(w, h, p, {}).weight;
      const double e_joint = calib::relative_output_error(w, joint(w, h, p, type).weight, h);
      const double e_rtn = calib::relative_output_error(w, quant::quantize_matrix(t, pruned, nullptr)->to_dense_f32(), h);
      const Tensor g = quant::gptq_quantize(pruned, h, t, {}).weight->to_dense_f32();
      const double e_gptq = calib::relative_output_error(w, g, h);
      std::printf("%-9s %-4s prune only %.5f  joint %.5f  prune+rtn %.5f  prune+gptq %.5f (gptq zeros %.3f)\n", type, pat, calib::relative_output_error(w, pruned, h),
                  e_joint, e_rtn, e_gptq, double(zeros(g)) / double(g.numel()));
      EXPECT_LE(e_joint, e_rtn) << type << " " << pat;
      EXPECT_LE(e_joint, 1.15 * e_gptq) << type << " " << pat;
      EXPECT_LT(double(zeros(g)) / double(g.numel()), 0.45) << type << " " << pat;
    }
}

// Suspect 4 of issue 5: with a grid that does not round, the joint sweep is
// plain SparseGPT bit for bit (same masks, same updates, same block widths).
TEST(SparseGptJoint, IdentityGridIsPlainSparseGpt) {
  const int64_t rows = 24, cols = 256;
  const Tensor w = random_matrix(rows, cols, 21);
  const std::vector<float> h = low_rank_hessian(1024, cols, 16, 22);
  for (const char* pat : {"0.5", "0.7", "2:4", "4:8"}) {
    SCOPED_TRACE(pat);
    const SparsityPattern p = SparsityPattern::parse(pat);
    prune::SparseGptOptions o;
    o.make_quantizer = [](int64_t r, int64_t c) { return std::make_unique<IdentityColumns>(r, c); };
    const auto j = prune::sparsegpt_prune(w, h, p, o);
    const Tensor plain = prune::sparsegpt_prune(w, h, p, {}).weight;
    const Tensor stored = j.quantized->to_dense_f32();
    for (int64_t i = 0; i < plain.numel(); ++i) {
      ASSERT_EQ(j.weight.f32()[i], plain.f32()[i]) << i;
      ASSERT_EQ(stored.f32()[i], plain.f32()[i]) << i;
    }
  }
}

// Issue 5 (joint q8_0 lost to SparseGPT alone on teacher-9M): a chunk's scales
// were fixed from its current weights, before pruning the chunk's own first
// columns pushed large compensations onto its later ones, so kept weights
// outgrew the block's range and were clamped. With the scales fixed from the
// chunk's look-ahead, joint Q8_0 stays within Q8_0's rounding noise of
// SparseGPT alone (SparseGPT then RTN Q8_0: up to 1.11x here), clamps a few
// kept weights in 10^4 (those the rounding feedback pushes just past the
// range), and joint Q4_0 beats SparseGPT then RTN Q4_0.
TEST(SparseGptJoint, Q8_0StaysWithinRoundingOfSparseGptOnLowRankInputs) {
  const int64_t rows = 64, cols = 256;
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    const std::vector<float> h = low_rank_hessian(2048, cols, 8, seed);
    const Tensor w = random_matrix(rows, cols, 100 + seed);
    for (const char* pat : {"0.5", "2:4"}) {
      SCOPED_TRACE(std::to_string(seed) + " " + pat);
      const SparsityPattern p = SparsityPattern::parse(pat);
      const Tensor pruned = prune::sparsegpt_prune(w, h, p, {}).weight;
      const double e_prune = calib::relative_output_error(w, pruned, h);
      auto rtn = [&](const char* t) {
        return calib::relative_output_error(w, quant::quantize_matrix(QuantTarget::parse(t), pruned, nullptr)->to_dense_f32(), h);
      };
      int64_t clamped = 0, kept = 0;
      prune::SparseGptOptions o;
      o.make_quantizer = [&](int64_t r, int64_t c) { return std::make_unique<ClampCountingQ8_0>(r, c, &clamped, &kept); };
      const Tensor q8 = joint(w, h, p, "q8_0").weight;
      const Tensor counted = prune::sparsegpt_prune(w, h, p, o).weight;  // the same sweep, observed
      for (int64_t i = 0; i < q8.numel(); ++i) ASSERT_EQ(counted.f32()[i], q8.f32()[i]) << i;
      const double e_q8 = calib::relative_output_error(w, q8, h);
      const double e_q4 = calib::relative_output_error(w, joint(w, h, p, "q4_0").weight, h);
      std::printf("seed %u %-4s SparseGPT %.6f  joint q8_0 %.6f (x%.3f, clamped %.4f%%)  then RTN q8_0 %.6f  "
                  "joint q4_0 %.6f  then RTN q4_0 %.6f\n", seed, pat, e_prune, e_q8, e_q8 / e_prune,
                  100.0 * double(clamped) / double(kept), rtn("q8_0"), e_q4, rtn("q4_0"));
      EXPECT_LE(e_q8, 1.08 * e_prune);
      EXPECT_LE(e_q8, 1.05 * rtn("q8_0"));
      EXPECT_LE(double(clamped), 3e-3 * double(kept));
      EXPECT_LE(e_q4, rtn("q4_0"));
    }
  }
}

// Suspect 2 of issue 5: the GGUF written by the joint mode holds exactly the
// weights the sweep made (block bytes copied, no re-quantization at export):
// every block Linear of a reloaded model decodes bit for bit to the in-memory one.
TEST(SparseGptJoint, SavedGgufReproducesTheSweepsWeights) {
  ModelConfig c = preset_config("tiny");
  c.hidden_dim = 192;  // every Linear splits into 32-blocks (no F16 fallback)
  c.validate("test");
  calib::CalibSet calib;
  for (int s = 0; s < 3; ++s) calib.seqs.push_back(test::random_tokens(48, 30 + s));
  const std::string dir = test::temp_dir("sparsegpt_joint_save");
  for (const char* type : {"q8_0", "q4_0"}) {
    SCOPED_TRACE(type);
    ModelFile f = random_model(c, DType::F32, 5);
    Transformer m(f);
    prune::PruneOptions opt;
    opt.method = "sparsegpt", opt.pattern = SparsityPattern::parse("0.5");
    opt.sparsegpt.quant = QuantTarget::parse(type);
    prune::prune_model(m, calib, opt);
    ModelFile out = f;
    m.export_to(out);
    const std::string path = dir + "/" + type + ".gguf";
    save_gguf_model(out, path);
    ModelFile loaded = load_model(path);
    Transformer m2(loaded);
    const std::vector<Linear*> a = m.linears(), b = m2.linears();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i + 1 < a.size(); ++i) {
      EXPECT_EQ(loaded.get(a[i]->name() + ".weight").dtype, QuantTarget::parse(type).block) << a[i]->name();
      const Tensor x = a[i]->weight().to_dense_f32(), y = b[i]->weight().to_dense_f32();
      ASSERT_EQ(x.numel(), y.numel());
      for (int64_t k = 0; k < x.numel(); ++k) ASSERT_EQ(x.f32()[k], y.f32()[k]) << a[i]->name() << " " << k;
    }
  }
}

// `shrink prune --quant-type`: a quantized GGUF whose block Linears are Q4_0
// and 2:4 (ffn_down, 172 wide, falls back to F16 as llama-quantize would).
TEST(SparseGptJointCli, Stories260KQ4_0TwoFourWritesQuantizedGguf) {
  SHRINK_REQUIRE_ASSET(model, "models/stories260K/stories260K.bin");
  SHRINK_REQUIRE_ASSET(text, "text/gutenberg/valid.txt");
  const std::string dir = test::temp_dir("sparsegpt_joint_cli");
  const std::string out = dir + "/joint.gguf", common = " -t 1 --method sparsegpt --sparsity 2:4 --calib " + text +
                                                        " --calib-tokens 1024 --seq-len 256 ";
  const auto r = test::run_shrink("prune " + model + common + "--quant-type q4_0 -o " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const ModelFile f = load_model(out);
  EXPECT_EQ(f.get("blk.0.attn_q.weight").dtype, DType::Q4_0);
  EXPECT_EQ(f.get("blk.0.ffn_down.weight").dtype, DType::F16);
  for (const char* name : {"blk.0.attn_q.weight", "blk.4.ffn_up.weight", "blk.2.ffn_down.weight"})
    expect_nm(f.get(name).to(DType::F32), 2, 4);
  EXPECT_EQ(f.get("token_embd.weight").dtype, DType::F32);

  const auto bad_type = test::run_shrink("prune " + model + common + "--quant-type q4_k -o " + dir + "/x.gguf");
  EXPECT_NE(bad_type.code, 0);
  EXPECT_NE(bad_type.out.find("exactly 0"), std::string::npos) << bad_type.out;
  const auto bad_method = test::run_shrink("prune " + model + " --method wanda --sparsity 2:4 --calib " + text +
                                           " --quant-type q4_0 -o " + dir + "/y.gguf");
  EXPECT_NE(bad_method.code, 0);
  EXPECT_NE(bad_method.out.find("SparseGPT option"), std::string::npos) << bad_method.out;
}

}  // namespace shrink

