// Tests of OneBit / ternary weights: the sign-matrix kernels (every SIMD path
// against the scalar reference on awkward shapes, n = 1 and n > 1, no reads
// past x), SignWeight's product against its own dense form, and the SVID fit
// (exact on rank-1 magnitudes, importance weighting, ternary <= onebit error,
// storage figure, the QuantTarget wiring and GPTQ through it).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compress/quant/gptq.h"
#include "compress/quant/onebit.h"
#include "compress/quant/target.h"
#include "core/tensor.h"
#include "kernels/gemv.h"
#include "kernels/sign_gemv.h"
#include "model/sign_weight.h"

namespace shrink {
namespace {

using kernels::SignCode;
using RowsFn = void (*)(SignCode, const uint64_t*, const float*, float*, int64_t, int64_t);
using UnpackFn = void (*)(SignCode, const uint64_t*, float*, int64_t, int64_t);

constexpr SignCode kCodes[] = {SignCode::Binary, SignCode::Ternary};
constexpr int64_t kRowsList[] = {1, 3, 4, 5, 17};
constexpr int64_t kColsList[] = {1, 7, 8, 15, 16, 17, 31, 63, 64, 65, 100, 129, 257, 1000};

bool hw_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
bool hw_avx2() { return __builtin_cpu_supports("avx2"); }

std::vector<std::pair<std::string, RowsFn>> row_kernels() {
  std::vector<std::pair<std::string, RowsFn>> f = {{"dispatch", kernels::sign_gemv}};
  if (hw_avx512()) f.push_back({"avx512", kernels::sign_rows_avx512});
  if (hw_avx2()) f.push_back({"avx2", kernels::sign_rows_avx2});
  return f;
}

// Random packed planes (padding bits zero) of a rows x cols sign matrix.
std::vector<uint64_t> random_planes(SignCode code, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int8_t> s(static_cast<size_t>(rows * cols));
  for (auto& v : s) v = static_cast<int8_t>(code == SignCode::Binary ? int(rng() % 2) * 2 - 1 : int(rng() % 3) - 1);
  std::vector<float> ones(static_cast<size_t>(std::max(rows, cols)), 1.0f);
  SignWeight w(code, rows, cols, s.data(), ones.data(), ones.data());
  return w.planes();
}

std::vector<float> random_vec(int64_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& e : v) e = u(rng);
  return v;
}

Tensor gaussian(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Tensor t = Tensor::alloc(DType::F32, {rows, cols});
  for (int64_t i = 0; i < rows * cols; ++i) t.f32()[i] = n(rng);
  return t;
}

// f32 rounding of a sum of cols terms of size |x|: a bound for any order.
float tol(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += std::fabs(v);
  return static_cast<float>(4e-6 * s + 1e-6);
}

TEST(SignGemv, KernelsMatchReference) {
  for (auto& [name, fn] : row_kernels())
    for (SignCode code : kCodes)
      for (int64_t rows : kRowsList)
        for (int64_t cols : kColsList) {
          const auto S = random_planes(code, rows, cols, uint32_t(rows * 1000 + cols));
          const auto x = random_vec(cols, uint32_t(cols));
          std::vector<float> ref(static_cast<size_t>(rows)), got(static_cast<size_t>(rows), NAN);
          kernels::sign_gemv_ref(code, S.data(), x.data(), ref.data(), rows, cols);
          fn(code, S.data(), x.data(), got.data(), rows, cols);
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_NEAR(got[r], ref[r], tol(x)) << name << " code=" << int(code) << " " << rows << "x" << cols;
        }
}

TEST(SignGemv, ReferenceIsTheSignedSum) {
  // 1 row, columns +1 -1 +1 (binary) and +1 0 -1 (ternary), x = 1, 10, 100.
  const std::vector<int8_t> bin = {1, -1, 1}, ter = {1, 0, -1};
  const std::vector<float> one(3, 1.0f), x = {1, 10, 100};
  float y = 0;
  kernels::sign_gemv_ref(SignCode::Binary, SignWeight(SignCode::Binary, 1, 3, bin.data(), one.data(), one.data())
                                               .planes().data(), x.data(), &y, 1, 3);
  EXPECT_EQ(y, 91.0f);
  kernels::sign_gemv_ref(SignCode::Ternary, SignWeight(SignCode::Ternary, 1, 3, ter.data(), one.data(), one.data())
                                                .planes().data(), x.data(), &y, 1, 3);
  EXPECT_EQ(y, -99.0f);
}

TEST(SignGemv, ThreadCountDoesNotChangeResults) {
  for (SignCode code : kCodes) {
    const int64_t rows = 200, cols = 333;
    const auto S = random_planes(code, rows, cols, 7);
    const auto x = random_vec(cols, 8);
    std::vector<float> y1(static_cast<size_t>(rows)), y2(static_cast<size_t>(rows));
    kernels::sign_gemv_threads(code, S.data(), x.data(), y1.data(), rows, cols, 1);
    kernels::sign_gemv_threads(code, S.data(), x.data(), y2.data(), rows, cols, 2);
    EXPECT_EQ(y1, y2);
  }
}

TEST(SignGemv, UnpackMatchesReference) {
  std::vector<std::pair<std::string, UnpackFn>> fns = {{"dispatch", kernels::sign_unpack}};
  if (hw_avx512()) fns.push_back({"avx512", kernels::sign_unpack_avx512});
  if (hw_avx2()) fns.push_back({"avx2", kernels::sign_unpack_avx2});
  for (auto& [name, fn] : fns)
    for (SignCode code : kCodes)
      for (int64_t cols : kColsList) {
        const int64_t rows = 3;
        const auto S = random_planes(code, rows, cols, uint32_t(cols + 5));
        std::vector<float> ref(static_cast<size_t>(rows * cols)), got(static_cast<size_t>(rows * cols + 1), 7.0f);
        kernels::sign_unpack_ref(code, S.data(), ref.data(), rows, cols);
        fn(code, S.data(), got.data(), rows, cols);
        EXPECT_EQ(got.back(), 7.0f) << name << ": wrote past the end";
        got.pop_back();
        EXPECT_EQ(got, ref) << name << " code=" << int(code) << " cols=" << cols;
      }
}

TEST(SignGemv, MatmulAnyBatchMatchesReference) {
  for (SignCode code : kCodes)
    for (int64_t n : {1, 2, 4, 5, 17, 33, 129})  // both sides of the sgemm thresholds (16, 128)
      for (int64_t cols : {17, 64, 100}) {
        const int64_t rows = 37;
        const auto S = random_planes(code, rows, cols, uint32_t(n + cols));
        const auto x = random_vec(n * cols, uint32_t(n));
        std::vector<float> y(static_cast<size_t>(n * rows)), ref(static_cast<size_t>(rows));
        kernels::sign_matmul(code, S.data(), x.data(), y.data(), n, rows, cols);
        for (int64_t t = 0; t < n; ++t) {
          const std::vector<float> xt(x.begin() + t * cols, x.begin() + (t + 1) * cols);
          kernels::sign_gemv_ref(code, S.data(), xt.data(), ref.data(), rows, cols);
          for (int64_t r = 0; r < rows; ++r) ASSERT_NEAR(y[t * rows + r], ref[r], tol(xt)) << "n=" << n;
        }
      }
}

TEST(SignGemv, MultiTokenKernelMatchesReference) {
  if (!hw_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (SignCode code : kCodes)
    for (int64_t n : {1, 2, 3, 4, 5, 7, 9})
      for (int64_t rows : kRowsList)
        for (int64_t cols : {1, 15, 16, 17, 64, 65, 257}) {
          const auto S = random_planes(code, rows, cols, uint32_t(n * 7 + rows + cols));
          const auto x = random_vec(n * cols, uint32_t(n + cols));
          const int64_t ldy = rows + 3;  // y rows are ldy apart
          std::vector<float> y(static_cast<size_t>(n * ldy), NAN), ref(static_cast<size_t>(rows));
          kernels::sign_tokens_avx512(code, S.data(), x.data(), n, y.data(), ldy, rows, cols);
          for (int64_t t = 0; t < n; ++t) {
            const std::vector<float> xt(x.begin() + t * cols, x.begin() + (t + 1) * cols);
            kernels::sign_gemv_ref(code, S.data(), xt.data(), ref.data(), rows, cols);
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_NEAR(y[t * ldy + r], ref[r], tol(xt)) << "code=" << int(code) << " n=" << n << " " << rows << "x"
                                                            << cols;
            for (int64_t r = rows; r < ldy && t + 1 < n; ++r) ASSERT_TRUE(std::isnan(y[t * ldy + r])) << "wrote past row";
          }
        }
}

// x ending exactly where an inaccessible page starts: a load past it faults.
TEST(SignGemv, NoReadsPastEndOfActivations) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  char* base = static_cast<char*>(mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(base, MAP_FAILED);
  ASSERT_EQ(mprotect(base + page, page, PROT_NONE), 0);
  for (auto& [name, fn] : row_kernels())
    for (SignCode code : kCodes)
      for (int64_t cols : {1, 7, 17, 65, 100}) {
        float* x = reinterpret_cast<float*>(base + page) - cols;
        const auto xv = random_vec(cols, 3);
        std::memcpy(x, xv.data(), sizeof(float) * size_t(cols));
        const auto S = random_planes(code, 5, cols, 4);
        std::vector<float> ref(5), got(5);
        kernels::sign_gemv_ref(code, S.data(), xv.data(), ref.data(), 5, cols);
        fn(code, S.data(), x, got.data(), 5, cols);
        for (int r = 0; r < 5; ++r) ASSERT_NEAR(got[r], ref[r], tol(xv)) << name;
      }
  munmap(base, 2 * page);
}

TEST(OneBit, SignWeightMatmulMatchesItsDenseForm) {
  for (SignCode code : kCodes)
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 7}, {3, 65}, {17, 100}, {40, 257}}) {
      const Tensor w = gaussian(rows, cols, uint32_t(rows + cols));
      const auto sw = quant::onebit_quantize(w, code, nullptr);
      const Tensor d = sw->to_dense_f32();
      for (int64_t n : {1, 3, 9}) {
        const auto x = random_vec(n * cols, uint32_t(n));
        std::vector<float> y(static_cast<size_t>(n * rows)), ref(y.size());
        sw->matmul(x.data(), y.data(), n);
        kernels::matmul(DType::F32, d.data, x.data(), ref.data(), n, rows, cols);
        for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-4f * (1 + std::fabs(ref[i])));
      }
    }
}

// W = S o (a b^T) with positive a, b: the SVID reproduces it (to f16 precision once stored).
TEST(OneBit, SvidRecoversRankOneMagnitudes) {
  const int64_t rows = 23, cols = 70;
  std::mt19937 rng(5);
  Tensor w = Tensor::alloc(DType::F32, {rows, cols});
  std::vector<float> a(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float mag = (0.5f + float(r % 5)) * (0.1f + 0.03f * float(c % 11));
      a[r * cols + c] = mag;
      w.f32()[r * cols + c] = rng() % 2 ? mag : -mag;
    }
  std::vector<float> h, g;
  quant::rank1_fit(a.data(), rows, cols, nullptr, 200, h, g);
  for (int64_t i = 0; i < rows * cols; ++i) ASSERT_NEAR(h[i / cols] * g[i % cols], a[i], 1e-5f * a[i]);
  for (SignCode code : kCodes) {
    const auto sw = quant::onebit_quantize(w, code, nullptr);
    const Tensor q = sw->to_dense_f32();
    for (int64_t i = 0; i < rows * cols; ++i) {
      ASSERT_EQ(sw->sign(i / cols, i % cols), w.f32()[i] > 0 ? 1 : -1);
      ASSERT_NEAR(q.f32()[i], w.f32()[i], 2e-3f * std::fabs(w.f32()[i]));
    }
  }
}

TEST(OneBit, ImportanceLowersWeightedError) {
  const int64_t rows = 64, cols = 96;
  const Tensor w = gaussian(rows, cols, 11);
  std::vector<float> imp = random_vec(cols, 12, 0.0f, 1.0f);
  for (auto& v : imp) v = std::exp(6.0f * v);  // ~400x spread, as real activations have
  for (SignCode code : kCodes) {
    const Tensor plain = quant::onebit_quantize(w, code, nullptr)->to_dense_f32();
    const Tensor weighted = quant::onebit_quantize(w, code, imp.data())->to_dense_f32();
    const double e_plain = quant::weighted_sq_error(w, plain, imp.data());
    const double e_weighted = quant::weighted_sq_error(w, weighted, imp.data());
    EXPECT_LT(e_weighted, 0.98 * e_plain) << "code=" << int(code);
    // ... and the unweighted error is what the unweighted fit minimises.
    EXPECT_LT(quant::weighted_sq_error(w, plain, nullptr), quant::weighted_sq_error(w, weighted, nullptr));
  }
}

TEST(OneBit, TernaryErrorBelowOneBitOnGaussian) {
  const Tensor w = gaussian(128, 200, 21);
  const auto ob = quant::onebit_quantize(w, SignCode::Binary, nullptr);
  const auto tr = quant::onebit_quantize(w, SignCode::Ternary, nullptr);
  double energy = 0;
  for (int64_t i = 0; i < w.numel(); ++i) energy += double(w.f32()[i]) * w.f32()[i];
  const double e1 = quant::weighted_sq_error(w, ob->to_dense_f32(), nullptr) / energy;
  const double e3 = quant::weighted_sq_error(w, tr->to_dense_f32(), nullptr) / energy;
  // iid N(0,1): best 1-bit quantizer error 1 - 2/pi = 0.363, best 3-level 0.190 (Lloyd-Max).
  EXPECT_NEAR(e1, 0.363, 0.03);
  EXPECT_NEAR(e3, 0.190, 0.03);
  int64_t zeros = 0;
  for (int64_t i = 0; i < w.numel(); ++i) zeros += tr->sign(i / 200, i % 200) == 0;
  EXPECT_NEAR(double(zeros) / double(w.numel()), 0.46, 0.05);  // P(|x| < 0.612)
}

TEST(OneBit, BytesCountsPackedBitsAndF16Scales) {
  const Tensor w = gaussian(48, 256, 1), w2 = gaussian(5, 100, 2);
  EXPECT_EQ(quant::onebit_quantize(w, SignCode::Binary, nullptr)->bytes(), 48 * 256 / 8 + 2 * (48 + 256));
  EXPECT_EQ(quant::onebit_quantize(w, SignCode::Ternary, nullptr)->bytes(), 48 * 256 / 4 + 2 * (48 + 256));
  EXPECT_EQ(quant::onebit_quantize(w2, SignCode::Binary, nullptr)->bytes(), 5 * 2 * 8 + 2 * (5 + 100));  // rows padded to 128 bits
  const auto sw = quant::onebit_quantize(w, SignCode::Binary, nullptr);
  EXPECT_EQ(sw->kind(), "onebit");
  EXPECT_EQ(quant::onebit_quantize(w, SignCode::Ternary, nullptr)->kind(), "ternary");
}

TEST(OneBit, QuantTargetWiring) {
  for (const std::string name : {"onebit", "ternary"}) {
    const auto t = quant::QuantTarget::parse(name);
    EXPECT_TRUE(t.is_sign());
    EXPECT_FALSE(t.is_block);
    EXPECT_EQ(t.name(), name);
    EXPECT_EQ(quant::QuantTarget::parse(t.name()).sign, t.sign);
    EXPECT_TRUE(t.fits(100));
    EXPECT_EQ(t.chunk(100), 100);
    const Tensor w = gaussian(9, 100, 3);
    EXPECT_EQ(quant::quantize_matrix(t, w, nullptr)->kind(), name);
    EXPECT_EQ(quant::ColumnQuantizer::make(t, 9, 100)->chunk(), 100);
  }
  EXPECT_FALSE(quant::QuantTarget::parse("int4g32").is_sign());
}

// Random correlated inputs X (n x cols) and their Hessian 2/n X^T X.
std::vector<float> correlated_hessian(int64_t cols, uint32_t seed) {
  const int64_t n = 4 * cols;
  const Tensor z = gaussian(n, cols, seed);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (int64_t i = 0; i < n; ++i) {
    const float common = z.f32()[i * cols];
    for (int64_t c = 0; c < cols; ++c) x[i * cols + c] = z.f32()[i * cols + c] + 0.8f * common * float(c % 3);
  }
  std::vector<float> h(static_cast<size_t>(cols * cols));
  for (int64_t a = 0; a < cols; ++a)
    for (int64_t b = 0; b < cols; ++b) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += double(x[i * cols + a]) * x[i * cols + b];
      h[a * cols + b] = static_cast<float>(2 * s / double(n));
    }
  return h;
}

TEST(OneBit, GptqIdentityHessianIsRtnAndCorrelatedHessianHelps) {
  const int64_t rows = 32, cols = 48;
  const Tensor w = gaussian(rows, cols, 31);
  const auto t = quant::QuantTarget::parse("onebit");
  std::vector<float> eye(static_cast<size_t>(cols * cols), 0.0f);
  for (int64_t c = 0; c < cols; ++c) eye[c * cols + c] = 1.0f;
  // No error feedback with a diagonal H: each column's refit g equals RTN's.
  const Tensor g_eye = quant::gptq_quantize(w, eye, t, {}).weight->to_dense_f32();
  const Tensor rtn = quant::quantize_matrix(t, w, nullptr)->to_dense_f32();
  for (int64_t i = 0; i < w.numel(); ++i) ASSERT_EQ(g_eye.f32()[i], rtn.f32()[i]) << i;
  for (const char* name : {"onebit", "ternary"}) {
    const auto tt = quant::QuantTarget::parse(name);
    const std::vector<float> h = correlated_hessian(cols, 32);
    const auto gq = quant::gptq_quantize(w, h, tt, {}).weight;
    EXPECT_EQ(gq->kind(), name);
    const double e_gptq = quant::relative_output_error(w, gq->to_dense_f32(), h);
    const double e_rtn = quant::relative_output_error(w, quant::quantize_matrix(tt, w, nullptr)->to_dense_f32(), h);
    EXPECT_LT(e_gptq, 0.9 * e_rtn) << name;
  }
}

}  // namespace
}  // namespace shrink
