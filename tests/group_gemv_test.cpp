// kernels/group_gemv: every path (scalar, AVX2, AVX-512; packed-code kernel
// and lane-order dequantization) against the scalar reference on awkward
// shapes: rows not a multiple of the row groups, columns not a multiple of
// the lane blocks or of a word, ragged last groups, words that straddle groups.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/group_gemv.h"
#include "kernel_walks.h"

using namespace shrink;
using kernels::GroupQuantView;

namespace {

// A random group-quantized matrix and the storage behind its view.
struct Matrix {
  std::vector<uint32_t> packed;
  std::vector<float> scale, zero, levels;
  GroupQuantView v;
};

// group: > 0 values per group, 0 per channel, -1 per tensor.
Matrix random_matrix(int bits, int64_t rows, int64_t cols, int64_t group, bool asym, bool codebook, uint32_t seed) {
  Matrix m;
  std::mt19937 rng(seed);
  GroupQuantView& v = m.v;
  v.bits = bits, v.rows = rows, v.cols = cols;
  v.group_len = group > 0 ? std::min(group, cols) : cols;
  v.per_tensor = group == -1;
  const int64_t pw = 32 / bits, wpr = (cols + pw - 1) / pw;
  m.packed.assign(static_cast<size_t>(rows * wpr), 0);
  std::uniform_int_distribution<uint32_t> code(0, (1u << bits) - 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m.packed[r * wpr + c / pw] |= code(rng) << (bits * (c % pw));
  const int64_t params = v.per_tensor ? 1 : rows * v.n_groups();
  std::uniform_real_distribution<float> s(0.001f, 0.02f);
  for (int64_t i = 0; i < params; ++i) {
    m.scale.push_back(s(rng));
    m.zero.push_back(asym ? float(code(rng)) : float(1 << (bits - 1)));
  }
  if (codebook) {
    std::uniform_real_distribution<float> l(-1, 1);
    for (int i = 0; i < (1 << bits); ++i) m.levels.push_back(l(rng));
  }
  v.packed = m.packed.data();
  v.scale = m.scale.data();
  v.zero = codebook ? nullptr : m.zero.data();
  v.levels = codebook ? m.levels.data() : nullptr;
  return m;
}

std::vector<float> random_x(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& e : x) e = d(rng);
  return x;
}

// |y - ref| against the size of the sum's terms.
void expect_close(const GroupQuantView& w, const std::vector<float>& x, const std::vector<float>& y,
                  const std::vector<float>& ref, int64_t n, const std::string& what) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    kernels::group_dequantize_row(w, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double mag = 0;
      for (int64_t c = 0; c < w.cols; ++c) mag += std::fabs(double(row[c]) * x[t * w.cols + c]);
      ASSERT_NEAR(y[t * w.rows + r], ref[t * w.rows + r], 1e-5 * mag + 1e-6) << what << " row " << r << " input " << t;
    }
  }
}

std::string describe(const GroupQuantView& w, int64_t group, bool asym, int64_t n) {
  return "int" + std::to_string(w.bits) + " " + std::to_string(w.rows) + "x" + std::to_string(w.cols) + " group " +
         std::to_string(group) + (asym ? " asym" : " sym") + (w.levels ? " codebook" : "") + " n=" + std::to_string(n);
}

// |y_q8 - y_exact| <= sum_c |w_c| * dx_c / 2: x rounded to int8 per block of 16 words.
void expect_q8_bound(const GroupQuantView& w, const std::vector<float>& x, const std::vector<float>& y,
                     const std::vector<float>& ref, int64_t n, const std::string& what) {
  const int64_t block = 16 * w.per_word();
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    kernels::group_dequantize_row(w, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double bound = 1e-5, mag = 0;
      for (int64_t c0 = 0; c0 < w.cols; c0 += block) {
        float amax = 0;
        for (int64_t c = c0; c < std::min(w.cols, c0 + block); ++c) amax = std::max(amax, std::fabs(x[t * w.cols + c]));
        for (int64_t c = c0; c < std::min(w.cols, c0 + block); ++c) {
          bound += std::fabs(row[c]) * amax / 127 / 2;
          mag += std::fabs(double(row[c]) * x[t * w.cols + c]);
        }
      }
      ASSERT_NEAR(y[t * w.rows + r], ref[t * w.rows + r], bound + 1e-5 * mag) << what << " row " << r << " input " << t;
    }
  }
}

}  // namespace

TEST(GroupGemv, EveryPathMatchesTheReferenceOnAwkwardShapes) {
  using kernels::GroupKernel;
  int checked_simd = 0, checked_q8 = 0;
  uint32_t seed = 1;
  for (int bits : {2, 3, 4, 5, 8})
    for (int64_t cols : {96, 160, 100})
      for (int64_t group : {0, -1, 20, 32, 64, 128})  // 20: words straddle groups at every width but 8 bits
        for (bool asym : {false, true})
          for (int64_t rows : {1, 7, 33}) {
            const Matrix m = random_matrix(bits, rows, cols, group, asym, false, seed++);
            for (int64_t n : {1, 3, 6}) {
              const std::vector<float> x = random_x(n * cols, seed++);
              std::vector<float> ref(static_cast<size_t>(n * rows)), y(ref.size()), yq(ref.size());
              kernels::group_matmul_ref(m.v, x.data(), ref.data(), n);
              const std::string what = describe(m.v, group, asym, n);
              const bool q8 = kernels::group_matmul_with("scalar", GroupKernel::Q8, m.v, x.data(), yq.data(), n);
              if (q8) expect_q8_bound(m.v, x, yq, ref, n, what + " scalar q8");
              checked_q8 += q8;
              for (const char* isa : {"scalar", "avx2", "avx512"})
                for (GroupKernel k : {GroupKernel::F32, GroupKernel::Q8, GroupKernel::Dequant}) {
                  std::fill(y.begin(), y.end(), NAN);
                  if (!kernels::group_matmul_with(isa, k, m.v, x.data(), y.data(), n)) continue;
                  checked_simd += std::string(isa) != "scalar";
                  const char* kind = k == GroupKernel::Q8 ? " q8" : k == GroupKernel::Dequant ? " dequant" : "";
                  const std::string name = what + " " + isa + kind;
                  expect_close(m.v, x, y, k == GroupKernel::Q8 ? yq : ref, n, name);  // q8 paths: as the scalar q8
                  if (HasFatalFailure()) return;
                }
              kernels::group_matmul(m.v, x.data(), y.data(), n);  // the dispatched path
              expect_close(m.v, x, y, kernels::group_uses_q8(m.v) && n < 16 ? yq : ref, n, what + " dispatched");
              if (HasFatalFailure()) return;
            }
          }
  EXPECT_GT(checked_q8, 0);
  if (checked_simd == 0) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512: only the scalar paths were checked";
}

TEST(GroupGemv, FourBitCodebooksUseTheirLevels) {
  for (int64_t group : {0, 32, 128})
    for (int64_t cols : {96, 100, 256}) {
      const Matrix m = random_matrix(4, 9, cols, group, false, true, 77);
      const std::vector<float> x = random_x(2 * cols, 78);
      std::vector<float> ref(18), y(18);
      kernels::group_matmul_ref(m.v, x.data(), ref.data(), 2);
      EXPECT_FALSE(kernels::group_uses_q8(m.v));
      for (const char* path : {"scalar", "avx2", "avx512"})
        for (auto k : {kernels::GroupKernel::F32, kernels::GroupKernel::Dequant})
          if (kernels::group_matmul_with(path, k, m.v, x.data(), y.data(), 2))
            expect_close(m.v, x, y, ref, 2, std::string("nf4-like ") + path);
    }
}

// exact = true keeps f32 activations where q8 kernels exist.
TEST(GroupGemv, ExactViewsKeepF32Activations) {
  Matrix m = random_matrix(4, 40, 256, 128, true, false, 31);
  const std::vector<float> x = random_x(256, 32);
  std::vector<float> ref(40), y(40);
  kernels::group_matmul_ref(m.v, x.data(), ref.data(), 1);
  m.v.exact = true;
  EXPECT_FALSE(kernels::group_uses_q8(m.v));
  kernels::group_gemv(m.v, x.data(), y.data());
  expect_close(m.v, x, y, ref, 1, "exact");
}

// group_round_act is the rounding the q8 kernels apply: their products equal the dequantized
// weights times the rounded x (to f32 summation order) at awkward widths; views with f32 kernels
// get x back unchanged.
TEST(GroupGemv, RoundActIsTheQ8KernelsRounding) {
  for (const auto& [bits, cols, group] : {std::tuple<int, int64_t, int64_t>{4, 256, 32}, {4, 200, 40}, {2, 300, 64},
                                         {8, 72, 0}, {4, 1000, 128}, {2, 33, 32}}) {
    const Matrix m = random_matrix(bits, 9, cols, group, bits == 8, false, uint32_t(cols));
    ASSERT_TRUE(kernels::group_uses_q8(m.v)) << describe(m.v, group, bits == 8, 1);
    std::vector<float> x = random_x(cols, uint32_t(bits * cols));
    x[cols / 3] *= 40;  // an outlier sets one block's scale
    std::vector<float> xr(static_cast<size_t>(cols)), y(9), ref(9);
    kernels::group_round_act(m.v, x.data(), xr.data());
    kernels::group_gemv(m.v, x.data(), y.data());
    kernels::group_matmul_ref(m.v, xr.data(), ref.data(), 1);
    expect_close(m.v, xr, y, ref, 1, "round_act " + describe(m.v, group, bits == 8, 1));
    double moved = 0;
    for (int64_t c = 0; c < cols; ++c) moved = std::max(moved, double(std::fabs(xr[c] - x[c])));
    EXPECT_GT(moved, 0) << "x was not rounded";
  }
  Matrix m = random_matrix(4, 4, 128, 32, false, false, 3);
  m.v.exact = true;
  const std::vector<float> x = random_x(128, 4);
  std::vector<float> xr(128);
  kernels::group_round_act(m.v, x.data(), xr.data());
  EXPECT_EQ(xr, x);
}

// Words straddling two groups (int3: 10 codes per word) take the SIMD f32 kernels when a group holds
// at least two words; a word across three groups, and 8-bit codebooks, take the scalar path.
TEST(GroupGemv, WhichShapesTakeTheScalarPath) {
  Matrix int4 = random_matrix(4, 3, 128, 32, true, false, 8);
  int4.v.exact = true;  // the f32 kernels
  const char* simd = kernels::group_gemv_path(int4.v);
  const Matrix fp8 = random_matrix(8, 3, 64, 0, false, true, 5);
  EXPECT_STREQ(kernels::group_gemv_path(fp8.v), "scalar");
  const Matrix int3 = random_matrix(3, 3, 128, 64, true, false, 6);  // groups of 64: words 6 and 12 straddle
  EXPECT_STREQ(kernels::group_gemv_path(int3.v), simd);                // scalar only without SIMD
  const Matrix int3ch = random_matrix(3, 3, 128, 0, true, false, 7);
  EXPECT_STREQ(kernels::group_gemv_path(int3ch.v), simd);
  const Matrix int2g12 = random_matrix(2, 3, 128, 12, true, false, 9);  // 16 codes per word over 2-3 groups of 12
  EXPECT_STREQ(kernels::group_gemv_path(int2g12.v), "scalar");
  const std::vector<float> x = random_x(2 * 128, 10);
  std::vector<float> ref(6), y(6);
  kernels::group_matmul_ref(int2g12.v, x.data(), ref.data(), 2);
  kernels::group_matmul(int2g12.v, x.data(), y.data(), 2);
  expect_close(int2g12.v, x, y, ref, 2, "int2 g12");
}

// int3 g128 at decode's shape: every SIMD path against the reference, with zero points, across threads.
TEST(GroupGemv, StraddlingWordsAtDecodeShape) {
  const int64_t rows = 96, cols = 1536;
  const Matrix m = random_matrix(3, rows, cols, 128, true, false, 41);
  const std::vector<float> x = random_x(cols, 42);
  std::vector<float> ref(rows), y(rows), y2(rows);
  kernels::group_matmul_ref(m.v, x.data(), ref.data(), 1);
  for (const char* isa : {"avx2", "avx512"})
    for (auto k : {kernels::GroupKernel::F32, kernels::GroupKernel::Dequant})
      if (kernels::group_matmul_with(isa, k, m.v, x.data(), y.data(), 1))
        expect_close(m.v, x, y, ref, 1, std::string("int3g128 ") + isa);
  kernels::group_gemv_threads(m.v, x.data(), y.data(), 1);
  kernels::group_gemv_threads(m.v, x.data(), y2.data(), 2);
  expect_close(m.v, x, y, ref, 1, "int3g128 dispatched");
  EXPECT_EQ(y, y2);
}

// The same bits whatever the thread count and whether rows come one input at a time or batched.
TEST(GroupGemv, ResultsDoNotDependOnThreadsOrBatch) {
  const int64_t rows = 300, cols = 512;
  const Matrix m = random_matrix(4, rows, cols, 128, true, false, 11);
  const std::vector<float> x = random_x(5 * cols, 12);
  std::vector<float> y1(rows), y2(rows), yb(5 * rows);
  kernels::group_matmul_codes(m.v, x.data(), yb.data(), 5);
  test::for_each_walk([&] {  // nor on how many streams a decoding thread walks
    for (int64_t t = 0; t < 5; ++t) {
      kernels::group_gemv_threads(m.v, x.data() + t * cols, y1.data(), 1);
      kernels::group_gemv_threads(m.v, x.data() + t * cols, y2.data(), 2);
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_EQ(y1[r], y2[r]) << r;
        ASSERT_EQ(y1[r], yb[t * rows + r]) << r;
      }
    }
  });
}

TEST(GroupGemv, LargeBatchDequantPathMatchesReference) {
  const int64_t rows = 70, cols = 384, n = 20;
  const Matrix m = random_matrix(4, rows, cols, 64, true, false, 21);
  const std::vector<float> x = random_x(n * cols, 22);
  std::vector<float> ref(n * rows), y(n * rows);
  kernels::group_matmul_ref(m.v, x.data(), ref.data(), n);
  kernels::group_matmul_dequant(m.v, x.data(), y.data(), n);
  expect_close(m.v, x, y, ref, n, "dequant sgemm");
  kernels::group_matmul(m.v, x.data(), y.data(), n);
  expect_close(m.v, x, y, ref, n, "dispatched");
}

TEST(GroupGemv, RejectsBadViews) {
  Matrix m = random_matrix(4, 2, 64, 32, false, false, 1);
  std::vector<float> x(64), y(2);
  m.v.bits = 9;
  EXPECT_THROW(kernels::group_gemv(m.v, x.data(), y.data()), std::exception);
  m.v.bits = 4;
  m.v.group_len = 0;
  EXPECT_THROW(kernels::group_gemv(m.v, x.data(), y.data()), std::exception);
}
