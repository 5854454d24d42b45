// Low-rank factorization (compress/lowrank, model/lowrank_weight): the SVD is
// exact at a matrix's true rank; on correlated inputs SVD-LLM's output error
// <= ASVD's <= plain SVD's at the same rank; LowRankWeight's product equals
// the dense U V math; the GGUF convention round-trips; `shrink factorize`
// end to end on stories260K.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/calib/stats.h"
#include "compress/lowrank/lowrank.h"
#include "core/file.h"
#include "io/gguf.h"
#include "model/lowrank_weight.h"
#include "model/random_init.h"
#include "test_util.h"

namespace shrink {
namespace {

using namespace lowrank;

Tensor random_matrix(int64_t rows, int64_t cols, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  Tensor t = Tensor::alloc(DType::F32, {rows, cols});
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(rng);
  return t;
}

// a {m, k} * b {k, n} in double.
Tensor product(const Tensor& a, const Tensor& b) {
  const int64_t m = a.dim(0), k = a.dim(1), n = b.dim(1);
  Tensor c = Tensor::alloc(DType::F32, {m, n});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += double(a.f32()[i * k + p]) * b.f32()[p * n + j];
      c.f32()[i * n + j] = float(s);
    }
  return c;
}

TEST(LowRank, SvdIsExactAtTheTrueRank) {
  std::mt19937 rng(1);
  const Tensor w = product(random_matrix(37, 5, rng), random_matrix(5, 23, rng));  // rank 5
  const Spectrum s = decompose(w, identity_transform(23));
  EXPECT_LT(s.sigma[5], 1e-5 * s.sigma[0]);
  EXPECT_EQ(energy_rank(s, 0.999999), 5);
  auto [u, v] = truncate(s, identity_transform(23), 5, DType::F32);
  ASSERT_EQ(u.shape, (std::vector<int64_t>{37, 5}));
  ASSERT_EQ(v.shape, (std::vector<int64_t>{5, 23}));
  const Tensor approx = LowRankWeight(u, v).to_dense_f32();
  EXPECT_LT(calib::relative_weight_error(w.f32(), approx.f32(), w.numel()), 1e-10);
  // Below the true rank the error is exactly the dropped energy (Eckart-Young).
  auto [u4, v4] = truncate(s, identity_transform(23), 4, DType::F32);
  const Tensor a4 = LowRankWeight(u4, v4).to_dense_f32();
  double total = 0;
  for (double x : s.sigma) total += x * x;
  EXPECT_NEAR(calib::relative_weight_error(w.f32(), a4.f32(), w.numel()), s.sigma[4] * s.sigma[4] / total, 1e-5);
}

// The randomized range finder on a decaying spectrum: the same truncation
// error as the full SVD up to a fraction of a percent, and exact at the true rank.
TEST(LowRank, RandomizedSvdMatchesExactTruncation) {
  std::mt19937 rng(5);
  const int64_t rows = 90, cols = 120, rank = 10;
  Tensor w = Tensor::alloc(DType::F32, {rows, cols});
  std::fill_n(w.f32(), w.numel(), 0.0f);
  for (int i = 0; i < 40; ++i) {  // sum of rank-1 terms with geometrically decaying weights
    const Tensor a = random_matrix(rows, 1, rng, std::pow(0.8f, float(i))), b = random_matrix(1, cols, rng);
    const Tensor ab = product(a, b);
    for (int64_t j = 0; j < w.numel(); ++j) w.f32()[j] += ab.f32()[j];
  }
  const InputTransform t = identity_transform(cols);
  auto error = [&](const Spectrum& s) {
    auto [u, v] = truncate(s, t, rank, DType::F32);
    const Tensor a = LowRankWeight(u, v).to_dense_f32();
    return calib::relative_weight_error(w.f32(), a.f32(), w.numel());
  };
  const Spectrum exact = decompose(w, t), fast = decompose_randomized(w, t, rank, 2);
  EXPECT_LT(fast.sigma.size(), exact.sigma.size());
  EXPECT_NEAR(fast.total_energy, exact.total_energy, 1e-9 * exact.total_energy);
  EXPECT_LT(error(fast), 1.01 * error(exact));
  const Tensor low = product(random_matrix(rows, 4, rng), random_matrix(4, cols, rng));
  auto [u, v] = truncate(decompose_randomized(low, t, 4, 1), t, 4, DType::F32);
  const Tensor back = LowRankWeight(u, v).to_dense_f32();
  EXPECT_LT(calib::relative_weight_error(low.f32(), back.f32(), low.numel()), 1e-10);
}

TEST(LowRank, RankRules) {
  EXPECT_EQ(ratio_rank(64, 64, 0.5), 16);
  EXPECT_EQ(ratio_rank(172, 64, 0.6), 27);   // floor(0.6 * 172 * 64 / 236)
  EXPECT_EQ(ratio_rank(4, 4, 0.01), 1);       // at least 1
  EXPECT_EQ(max_saving_rank(64, 64), 31);     // 32 * 128 = 64 * 64 saves nothing
  EXPECT_EQ(max_saving_rank(3, 1), 0);        // a rank-1 factor of a 3x1 matrix holds 4 > 3 values
  EXPECT_THROW(ratio_rank(8, 8, 0), Error);
  EXPECT_THROW(ratio_rank(8, 8, 1.5), Error);
  EXPECT_THROW(parse_method("pca"), Error);
}

// Inputs with strongly unequal, correlated columns: x = z M with a few
// dominant directions, as LLM activations (outlier channels) have.
std::vector<float> correlated_inputs(int64_t n, int64_t cols, std::mt19937& rng) {
  const Tensor z = random_matrix(n, cols, rng);
  Tensor m = random_matrix(cols, cols, rng, 0.3f);
  for (int64_t c = 0; c < cols; ++c) m.f32()[c * cols + c] += 1.0f;
  for (int64_t r = 0; r < cols; ++r)
    for (int64_t c = 0; c < cols; ++c) m.f32()[r * cols + c] *= c % 7 == 0 ? 8.0f : 0.5f + 0.05f * float(c % 5);
  const Tensor x = product(z, m);
  return std::vector<float>(x.f32(), x.f32() + x.numel());
}

TEST(LowRank, OutputErrorSvdLlmBelowAsvdBelowSvd) {
  std::mt19937 rng(7);
  const int64_t rows = 24, cols = 40, n = 600, rank = 8;
  const Tensor w = random_matrix(rows, cols, rng);
  const std::vector<float> x = correlated_inputs(n, cols, rng);
  calib::Hessian hess(cols);
  hess.add(x.data(), n);
  calib::ColumnStats stats(cols);
  stats.add(x.data(), n);
  const std::vector<float> h = hess.matrix();
  auto output_error = [&](const InputTransform& t) {
    auto [u, v] = truncate(decompose(w, t), t, rank, DType::F32);
    const Tensor a = LowRankWeight(u, v).to_dense_f32();
    return calib::relative_output_error(w.f32(), a.f32(), rows, cols, h);
  };
  const double e_svd = output_error(identity_transform(cols));
  const double e_asvd = output_error(asvd_transform(stats.mean_abs(), 0.5));
  const InputTransform white = whitening_transform(h, cols, 0);
  const double e_llm = output_error(white);
  EXPECT_EQ(white.damp_used, 0);  // 600 tokens over 40 columns: X^T X is positive definite
  EXPECT_LE(e_llm, e_asvd);
  EXPECT_LE(e_asvd, e_svd);
  EXPECT_LT(e_llm, 0.8 * e_svd) << "whitening should clearly beat plain SVD here";
  // SVD-LLM: the output error is exactly the dropped whitened energy (Theorem 3.2).
  const Spectrum s = decompose(w, white);
  double total = 0, dropped = 0;
  for (size_t i = 0; i < s.sigma.size(); ++i) total += s.sigma[i] * s.sigma[i], dropped += i >= rank ? s.sigma[i] * s.sigma[i] : 0;
  EXPECT_NEAR(e_llm, dropped / total, 1e-4);
}

TEST(LowRank, SingularInputsAreDampened) {
  std::mt19937 rng(3);
  const int64_t rows = 10, cols = 16, n = 6;  // fewer tokens than columns: X^T X is singular
  const Tensor w = random_matrix(rows, cols, rng);
  const Tensor x = random_matrix(n, cols, rng);
  calib::Hessian hess(cols);
  hess.add(x.f32(), n);
  const InputTransform t = whitening_transform(hess.matrix(), cols, 0);
  EXPECT_GT(t.damp_used, 0);
  auto [u, v] = truncate(decompose(w, t), t, 4, DType::F32);
  const Tensor a = LowRankWeight(u, v).to_dense_f32();
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_TRUE(std::isfinite(a.f32()[i]));
}

// y = x (U V)^T in double, against LowRankWeight::matmul, for awkward shapes and n = 1 and n > 1.
TEST(LowRank, MatmulEqualsDenseProduct) {
  std::mt19937 rng(11);
  for (auto [out, in, r] : {std::tuple<int64_t, int64_t, int64_t>{37, 53, 7}, {1, 19, 1}, {130, 3, 2}, {64, 172, 27}})
    for (DType dt : {DType::F32, DType::BF16})
      for (int64_t n : {1, 5, 33}) {
        const Tensor u = random_matrix(out, r, rng).to(dt), v = random_matrix(r, in, rng).to(dt);
        const LowRankWeight lw(u, v);
        const Tensor w = product(u.to(DType::F32), v.to(DType::F32));
        const Tensor x = random_matrix(n, in, rng);
        std::vector<float> y(size_t(n * out));
        lw.matmul(x.f32(), y.data(), n);
        for (int64_t t = 0; t < n; ++t)
          for (int64_t o = 0; o < out; ++o) {
            double ref = 0, mag = 0;
            for (int64_t c = 0; c < in; ++c) ref += double(x.f32()[t * in + c]) * w.f32()[o * in + c],
                                             mag += std::fabs(double(x.f32()[t * in + c]) * w.f32()[o * in + c]);
            ASSERT_NEAR(y[t * out + o], ref, 1e-5 * (mag + 1))
                << out << "x" << in << " r" << r << " " << dtype_name(dt) << " n=" << n;
          }
        EXPECT_EQ(lw.bytes(), r * (out + in) * int64_t(dtype_bytes(dt, 1)));
      }
  EXPECT_THROW(LowRankWeight(random_matrix(4, 3, rng), random_matrix(2, 5, rng)), Error);  // 3 != 2
  EXPECT_THROW(LowRankWeight(random_matrix(4, 2, rng), random_matrix(2, 5, rng).to(DType::BF16)), Error);
}

std::vector<float> logits_of(Transformer& m, const std::vector<int32_t>& toks) {
  KVCache c = m.new_cache(int(toks.size()));
  std::vector<float> out(toks.size() * size_t(m.config().vocab_size));
  m.forward(toks.data(), int(toks.size()), c, out.data(), true);
  return out;
}

TEST(LowRank, GgufRoundTripAndDenseExport) {
  const ModelFile f = random_model(preset_config("tiny"), DType::F32, 5);
  Transformer model(f);
  FactorizeOptions opt;
  opt.method = Method::Svd, opt.ratio = 0.5;
  opt.layer_ratios = {{"blk.1.ffn_down", 1.0}};  // would not save: stays dense
  const FactorizeReport rep = factorize_model(model, {}, opt);
  ASSERT_EQ(rep.layers.size(), 14u);
  int dense = 0;
  for (const auto& l : rep.layers) dense += l.rank == 0;
  EXPECT_EQ(dense, 1);
  const std::vector<int32_t> toks = {1, 70, 80, 90, 100, 3, 4};
  const std::vector<float> want = logits_of(model, toks);

  const std::string dir = test::temp_dir("lowrank_rt");
  ModelFile out = f;
  model.export_to(out);
  EXPECT_FALSE(out.find("blk.0.attn_q.weight"));
  ASSERT_TRUE(out.find("blk.0.attn_q.weight.lr_u"));
  EXPECT_TRUE(out.find("blk.1.ffn_down.weight"));
  save_gguf_model(out, dir + "/lr.gguf");
  EXPECT_EQ(read_gguf(dir + "/lr.gguf").get("shrink.lowrank.count").as_int("count"), 13);
  const ModelFile back = load_model(dir + "/lr.gguf");
  Transformer loaded(back);
  EXPECT_EQ(loaded.block(0).wq.weight().kind(), model.block(0).wq.weight().kind());
  EXPECT_EQ(loaded.weight_bytes(), model.weight_bytes());
  const std::vector<float> got = logits_of(loaded, toks);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;

  // --dense: multiplied out, an ordinary model with the same outputs up to rounding.
  EXPECT_EQ(densify_lowrank(loaded), 13);
  ModelFile dense_out = back;
  loaded.export_to(dense_out);
  EXPECT_FALSE(dense_out.find("blk.0.attn_q.weight.lr_u"));
  save_gguf_model(dense_out, dir + "/dense.gguf");
  Transformer dense_model(load_model(dir + "/dense.gguf"));
  const std::vector<float> got2 = logits_of(dense_model, toks);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got2[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << i;
}

TEST(LowRank, MalformedFactorsAreRejected) {
  ModelFile f = random_model(preset_config("tiny"), DType::F32, 5);
  f.tensors.erase("blk.0.attn_q.weight");
  f.tensors["blk.0.attn_q.weight.lr_u"] = Tensor::alloc(DType::F32, {64, 4});
  f.tensors["blk.0.attn_q.weight.lr_v"] = Tensor::alloc(DType::F32, {5, 64});
  EXPECT_THROW(check_model_tensors(f), Error);
  f.tensors["blk.0.attn_q.weight.lr_v"] = Tensor::alloc(DType::F32, {4, 64});
  EXPECT_NO_THROW(check_model_tensors(f));
  f.tensors.erase("blk.0.attn_q.weight.lr_v");
  EXPECT_THROW(check_model_tensors(f), Error);
}

// `shrink factorize` on the real stories260K: SVD-LLM beats plain SVD at the same
// ratio, the GGUF loads in `shrink eval`, and bad input gives clean errors.
TEST(LowRank, FactorizeCliOnStories) {
  SHRINK_REQUIRE_ASSET(model, "models/stories260K/stories260K.bin");
  SHRINK_REQUIRE_ASSET(valid, "text/gutenberg/valid.txt");
  const std::string dir = test::temp_dir("lowrank_cli");
  // The first 100 kB of the text: tokenizing all 3.7 MB twice per run would dominate the test.
  const std::string text = dir + "/valid_head.txt";
  write_text_file(text, read_text_file(valid).substr(0, 100000));
  const std::string common = model + " --ratio 0.6 --calib " + text + " --calib-tokens 2048 --seq-len 128 --ppl " +
                             text + " --ctx 128 --chunks 4 -t 1 ";
  for (const char* m : {"svd", "svd-llm"}) {
    const auto r = test::run_shrink("factorize " + common + "--method " + m + " -o " + dir + "/" + m + ".gguf");
    ASSERT_EQ(r.code, 0) << r.out;
  }
  auto kld = [&](const std::string& m) {
    const nlohmann::json j = nlohmann::json::parse(read_text_file(dir + "/" + m + ".gguf.json"));
    EXPECT_EQ(j["layers"].size(), 35u);
    EXPECT_TRUE(j["layers"][0].contains("output_rel_err"));
    return j["evals"][0]["kld"].get<double>();
  };
  EXPECT_LT(kld("svd-llm"), kld("svd"));
  const auto e = test::run_shrink("eval " + dir + "/svd-llm.gguf --ppl " + text + " --ctx 128 --chunks 2 -t 1 --base " + model);
  EXPECT_EQ(e.code, 0) << e.out;
  EXPECT_NE(e.out.find("KLD"), std::string::npos) << e.out;
  const auto bad = test::run_shrink("factorize " + model + " --method asvd --ratio 0.5 -t 1 -o " + dir + "/x.gguf");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("--calib"), std::string::npos) << bad.out;
  const auto hf = test::run_shrink("factorize " + model + " --method svd --ratio 0.5 -t 1 -o " + dir + "/hfdir");
  EXPECT_EQ(hf.code, 1);
  EXPECT_NE(hf.out.find("--dense"), std::string::npos) << hf.out;
}

}  // namespace
}  // namespace shrink
