// Bitmask sparse matrices (kernels/sparse_mask.h): packing keeps exactly the
// non-zeros (round trip bit-exact, byte count as documented), and the AVX-512
// GEMV and the threaded dispatch equal the scalar reference on shapes that are
// not multiples of 16 (narrow last group, x ending there), at densities from
// empty rows to dense ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "compress/prune/prune.h"
#include "core/cpu.h"
#include "kernels/sparse_mask.h"
#include "model/random_init.h"
#include "model/sparse_mask_weight.h"
#include "model/transformer.h"

namespace shrink {
namespace {

// rows x cols with each weight zero with probability `sparsity`; row 1 (when
// there is one) all zero, to cover an empty row between two others.
std::vector<float> random_sparse(int64_t rows, int64_t cols, double sparsity, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> val;
  std::uniform_real_distribution<double> u;
  std::vector<float> w(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      if (r != 1 && u(rng) >= sparsity) w[r * cols + c] = val(rng);
  return w;
}

// x sized exactly cols (a SIMD read past it would be caught by ASan / valgrind).
std::vector<float> random_x(int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> val;
  std::vector<float> x(static_cast<size_t>(cols));
  for (auto& v : x) v = val(rng);
  return x;
}

const int64_t kRows[] = {1, 3, 17, 40};
const int64_t kCols[] = {1, 5, 15, 16, 17, 31, 33, 100, 257};
const double kSparsity[] = {0.0, 0.5, 0.7, 0.9, 1.0};

}  // namespace

TEST(SparseMask, PackUnpackRoundTripsAndCountsBytes) {
  for (int64_t rows : kRows)
    for (int64_t cols : kCols)
      for (double s : kSparsity) {
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols) + " s=" + std::to_string(s));
        const std::vector<float> w = random_sparse(rows, cols, s, uint32_t(rows * 1000 + cols));
        const kernels::MaskMatrix m = kernels::mask_pack(w.data(), rows, cols);
        int64_t nz = 0;
        for (float v : w) nz += v != 0.0f;
        ASSERT_EQ(int64_t(m.values.size()), nz);
        ASSERT_EQ(m.row_start.back(), nz);
        EXPECT_EQ(m.bytes(), rows * ((cols + 15) / 16) * 2 + nz * 4);
        std::vector<float> back(w.size(), -1.0f);
        kernels::mask_unpack(m, back.data());
        for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(back[i], w[i]) << i;
        std::vector<float> ref(w.size(), -1.0f);
        kernels::mask_unpack_rows_ref(m, 0, rows, ref.data());
        ASSERT_EQ(ref, w);
        if (cpu_features().avx512f && rows > 1) {  // a slab that starts past row 0
          std::vector<float> simd(size_t((rows - 1) * cols), -1.0f);
          kernels::mask_unpack_rows_avx512(m, 1, rows - 1, simd.data());
          ASSERT_TRUE(std::equal(simd.begin(), simd.end(), w.begin() + cols));
        }
        for (int64_t r = 0; r < rows; ++r)  // mask bits past cols stay 0
          ASSERT_EQ(m.masks[r * m.groups() + m.groups() - 1] >> (cols - 16 * (m.groups() - 1)), 0);
      }
}

TEST(SparseMask, GemvMatchesReferenceAndDense) {
  for (int64_t rows : kRows)
    for (int64_t cols : kCols)
      for (double s : kSparsity) {
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols) + " s=" + std::to_string(s));
        const std::vector<float> w = random_sparse(rows, cols, s, uint32_t(rows * 7 + cols));
        const std::vector<float> x = random_x(cols, uint32_t(cols));
        const kernels::MaskMatrix m = kernels::mask_pack(w.data(), rows, cols);
        std::vector<float> ref(rows), got(rows), one(rows), two(rows);
        kernels::mask_gemv_ref(m, x.data(), ref.data());
        for (int64_t r = 0; r < rows; ++r) {  // the reference is dense math on the same matrix
          double d = 0, mag = 0;
          for (int64_t c = 0; c < cols; ++c) d += double(w[r * cols + c]) * x[c], mag += std::fabs(w[r * cols + c] * x[c]);
          ASSERT_NEAR(ref[r], d, 1e-6 * mag + 1e-30) << r;
        }
        if (cpu_features().avx512f) {
          kernels::mask_rows_avx512(m, 0, rows, x.data(), got.data());
          for (int64_t r = 0; r < rows; ++r) {
            double mag = 0;
            for (int64_t c = 0; c < cols; ++c) mag += std::fabs(w[r * cols + c] * x[c]);
            ASSERT_NEAR(got[r], ref[r], 1e-5 * mag + 1e-30) << r;
          }
        }
        // Threads split rows; every row is computed the same way whatever its slab.
        kernels::mask_gemv_threads(m, x.data(), one.data(), 1);
        kernels::mask_gemv_threads(m, x.data(), two.data(), 2);
        for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(one[r], two[r]) << r;
        if (cpu_features().avx512f) {
          for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(one[r], got[r]) << r;
        }
      }
}

// Several tokens (unpacked panels + sgemm) equal the reference token by token.
TEST(SparseMask, MatmulMatchesReferencePerToken) {
  for (int64_t n : {2, 5, 17})
    for (int64_t cols : {17, 100}) {
      const int64_t rows = 37;
      const std::vector<float> w = random_sparse(rows, cols, 0.7, uint32_t(n * 31 + cols));
      const std::vector<float> x = random_x(n * cols, uint32_t(n));
      const kernels::MaskMatrix m = kernels::mask_pack(w.data(), rows, cols);
      std::vector<float> y(static_cast<size_t>(n * rows)), ref(static_cast<size_t>(rows));
      kernels::mask_matmul(m, x.data(), y.data(), n);
      for (int64_t t = 0; t < n; ++t) {
        kernels::mask_gemv_ref(m, x.data() + t * cols, ref.data());
        for (int64_t r = 0; r < rows; ++r) ASSERT_NEAR(y[t * rows + r], ref[r], 1e-4f * (1 + std::fabs(ref[r]))) << n;
      }
    }
}

// A 70%-pruned model with its block Linears in the bitmask form gives the
// dense pruned model's logits (prefill and one-token decode).
TEST(SparseMask, BitmaskModelMatchesTheDensePrunedModel) {
  ModelConfig cfg = preset_config("tiny");
  cfg.validate("test");
  const ModelFile f = random_model(cfg, DType::F32, 13);
  Transformer model(f);
  prune::PruneOptions opt;
  opt.pattern = prune::SparsityPattern::parse("0.7");
  prune::prune_model(model, {}, opt);
  std::vector<int32_t> toks = {1, 7, 42, 99, 3, 250, 17, 8};
  auto run = [&](bool decode) {
    KVCache c = model.new_cache(int(toks.size()));
    const size_t V = size_t(cfg.vocab_size);
    std::vector<float> out(toks.size() * V);
    if (!decode) model.forward(toks.data(), int(toks.size()), c, out.data(), true);
    else
      for (size_t i = 0; i < toks.size(); ++i) model.forward(&toks[i], 1, c, out.data() + i * V, false);
    return out;
  };
  const std::vector<float> prefill = run(false), decode = run(true);
  const int64_t dense_bytes = model.linears().front()->weight().bytes();
  ASSERT_EQ(compress_model_mask(model), int(model.linears().size()) - 1);
  EXPECT_EQ(model.linears().front()->weight().kind(), "bitmask f32");
  EXPECT_LT(model.linears().front()->weight().bytes(), dense_bytes / 2);
  for (bool d : {false, true}) {
    const std::vector<float> got = run(d), &want = d ? decode : prefill;
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << d << " " << i;
  }
}

TEST(SparseMask, RefusesAnEmptyShape) {
  const float w = 1.0f;
  EXPECT_ANY_THROW(kernels::mask_pack(&w, 0, 1));
  EXPECT_ANY_THROW(kernels::mask_pack(&w, 1, 0));
}

}  // namespace shrink
