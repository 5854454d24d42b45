// Compressed N:M sparse weights (kernels/sparse_nm.h, model/sparse_weight.h):
// compression keeps exactly the non-zeros and refuses matrices that break the
// pattern; every product path (AVX-512 rows, multi-token, threaded, unpack +
// sgemm, scalar) equals dense math on the same matrix with its zeros, on
// shapes that are not multiples of M, 16 or 32.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "kernels/gemv.h"
#include "kernels/sparse_nm.h"
#include "model/sparse_weight.h"

namespace shrink {
namespace {

using kernels::NmShape;

// A rows x cols matrix with at most n non-zeros (random positions, sometimes fewer) in every m columns.
Tensor random_nm(int64_t rows, int64_t cols, int n, int m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> val(0.0f, 1.0f);
  Tensor w = Tensor::zeros(DType::F32, {rows, cols});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g * m < cols; ++g) {
      const int len = static_cast<int>(std::min<int64_t>(m, cols - g * m));
      std::vector<int> cols_in(len);
      for (int j = 0; j < len; ++j) cols_in[j] = j;
      std::shuffle(cols_in.begin(), cols_in.end(), rng);
      const int keep = std::min<int>(len, rng() % 5 == 0 ? n - 1 : n);  // some groups under-full
      for (int j = 0; j < keep; ++j) w.f32()[r * cols + g * m + cols_in[j]] = val(rng);
    }
  return w;
}

std::vector<float> random_x(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(count));
  for (float& v : x) v = d(rng);
  return x;
}

// y = x W^T in double, row by row, from the dense f32 matrix.
std::vector<float> dense_ref(const Tensor& w, const std::vector<float>& x, int64_t n) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<float> y(static_cast<size_t>(n * rows));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (int64_t c = 0; c < cols; ++c) acc += double(w.f32()[r * cols + c]) * x[t * cols + c];
      y[t * rows + r] = static_cast<float>(acc);
    }
  return y;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i]))) << what << " at " << i;
}

struct Case {
  int n, m;
  int64_t rows, cols;
};
const Case kCases[] = {{2, 4, 1, 4},   {2, 4, 5, 37},   {2, 4, 17, 100}, {2, 4, 33, 172}, {2, 4, 70, 1030},
                       {4, 8, 3, 13},  {4, 8, 19, 172}, {1, 2, 9, 63},   {8, 16, 21, 90}, {1, 4, 7, 50},
                       {3, 8, 11, 77}, {2, 8, 6, 33}};

TEST(SparseNm, CompressKeepsExactlyTheNonZeros) {
  for (const Case& c : kCases) {
    const Tensor w = random_nm(c.rows, c.cols, c.n, c.m, 7);
    const auto s = SparseNmWeight::compress(w, c.n, c.m, DType::F32);
    const Tensor back = s->to_dense_f32();
    for (int64_t i = 0; i < w.numel(); ++i) ASSERT_EQ(back.f32()[i], w.f32()[i]) << c.n << ":" << c.m << " at " << i;
    EXPECT_EQ(s->kind(), std::to_string(c.n) + ":" + std::to_string(c.m) + " f32");
    // bf16 values are the bf16 rounding of the kept ones, zeros stay zeros.
    const Tensor bb = SparseNmWeight::compress(w, c.n, c.m, DType::BF16)->to_dense_f32();
    for (int64_t i = 0; i < w.numel(); ++i) ASSERT_EQ(bb.f32()[i], bf16_to_f32(f32_to_bf16(w.f32()[i])));
  }
}

TEST(SparseNm, RefusesMatricesThatBreakThePattern) {
  Tensor w = random_nm(4, 16, 2, 4, 3);
  w.f32()[2 * 16 + 8] = w.f32()[2 * 16 + 9] = w.f32()[2 * 16 + 10] = 1.0f;  // 3 non-zeros in a group of 4
  EXPECT_THROW(SparseNmWeight::compress(w, 2, 4, DType::F32), std::exception);
  EXPECT_THROW(SparseNmWeight::compress(w, 4, 2, DType::F32), std::exception);   // n >= m
  EXPECT_THROW(SparseNmWeight::compress(w, 8, 32, DType::F32), std::exception);  // m > 16
  EXPECT_THROW(SparseNmWeight::compress(w, 2, 4, DType::F16), std::exception);   // values f32/bf16 only
}

// 2:4 bf16 reads 0.5625 of the dense bf16 bytes (values 2 bytes + 2-bit index per kept weight).
TEST(SparseNm, BytesAreTheCompressedSize) {
  const Tensor w = random_nm(64, 1536, 2, 4, 5);
  EXPECT_DOUBLE_EQ(double(SparseNmWeight::compress(w, 2, 4, DType::BF16)->bytes()) / (64 * 1536 * 2), 0.5625);
  EXPECT_DOUBLE_EQ(double(SparseNmWeight::compress(w, 2, 4, DType::F32)->bytes()) / (64 * 1536 * 4), 0.53125);
  EXPECT_DOUBLE_EQ(double(SparseNmWeight::compress(w, 4, 8, DType::BF16)->bytes()) / (64 * 1536 * 2), 0.625);
}

TEST(SparseNm, GemvEveryPathMatchesDenseMath) {
  const bool avx512 = cpu_features().avx512f && cpu_features().avx512bw && cpu_features().avx512vl;
  for (const Case& c : kCases)
    for (DType vt : {DType::F32, DType::BF16}) {
      const auto s = SparseNmWeight::compress(random_nm(c.rows, c.cols, c.n, c.m, 11), c.n, c.m, vt);
      const Tensor dense = s->to_dense_f32();
      const auto x = random_x(c.cols, 13);
      const auto want = dense_ref(dense, x, 1);
      const NmShape& sh = s->shape();
      const void* v = s->values().data;
      const auto* ix = static_cast<const uint32_t*>(s->indices().data);
      const std::string what = s->kind() + " " + std::to_string(c.rows) + "x" + std::to_string(c.cols);
      std::vector<float> y(static_cast<size_t>(c.rows));
      kernels::nm_gemv_ref(sh, vt, v, ix, x.data(), y.data());
      expect_close(y, want, what + " ref");
      for (int threads = 1; threads <= 3; ++threads) {
        std::fill(y.begin(), y.end(), -1.0f);
        kernels::nm_gemv_threads(sh, vt, v, ix, x.data(), y.data(), threads);
        expect_close(y, want, what + " threads " + std::to_string(threads));
      }
      if (avx512 && sh.half_pattern()) {
        std::vector<float> xp(static_cast<size_t>(kernels::nm_padded_cols(sh)), 0.0f);
        std::copy(x.begin(), x.end(), xp.begin());
        kernels::nm_rows_avx512(sh, vt, v, ix, xp.data(), y.data());
        expect_close(y, want, what + " avx512");
      }
    }
}

TEST(SparseNm, MatmulMatchesDenseMathForAnyTokenCount) {
  for (const Case& c : {Case{2, 4, 37, 100}, Case{4, 8, 40, 172}, Case{3, 8, 9, 30}})
    for (DType vt : {DType::F32, DType::BF16})
      for (int64_t n : {1, 2, 3, 4, 5, 16, 17, 40}) {
        const auto s = SparseNmWeight::compress(random_nm(c.rows, c.cols, c.n, c.m, 17), c.n, c.m, vt);
        const auto x = random_x(n * c.cols, 19);
        std::vector<float> y(static_cast<size_t>(n * c.rows), -1.0f);
        s->matmul(x.data(), y.data(), n);
        expect_close(y, dense_ref(s->to_dense_f32(), x, n), s->kind() + " n=" + std::to_string(n));
      }
}

TEST(SparseNm, FileTensorsRoundTrip) {
  const auto s = SparseNmWeight::compress(random_nm(12, 70, 2, 4, 23), 2, 4, DType::BF16);
  const auto t = sparse_weight_from_tensors(s->values(), s->indices(), sparse_meta_tensor(s->shape()), "w");
  EXPECT_EQ(t->in_features(), 70);
  const Tensor a = s->to_dense_f32(), b = t->to_dense_f32();
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.f32()[i], b.f32()[i]);
  Tensor bad = sparse_meta_tensor(s->shape());
  bad.ptr<int32_t>()[2] = 200;  // in_features that does not match the values' width
  EXPECT_THROW(sparse_weight_from_tensors(s->values(), s->indices(), bad, "w"), std::exception);
}

}  // namespace
}  // namespace shrink
