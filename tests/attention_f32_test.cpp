// The f32 decode-attention primitives (kernels/attention_f32.h): each SIMD
// path against the scalar reference on awkward head dims and lengths (around
// the 4-row step, the two-halves split and odd tails), and the whole decode
// attention against a double-precision softmax(q k^T) v.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/attention_f32.h"
#include "kernels/attention_q8.h"
#include "kernels/ops.h"

namespace shrink {
namespace {

using kernels::f32attn::Kernels;

std::vector<const Kernels*> simd_kernels() {
  std::vector<const Kernels*> out;
  if (kernels::q8attn::cpu_avx512()) out.push_back(&kernels::f32attn::avx512());
  if (kernels::q8attn::cpu_avx2()) out.push_back(&kernels::f32attn::avx2());
  return out;
}

std::vector<float> randn(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(rng);
  return x;
}

TEST(AttentionF32, PrimitivesOfEachIsaMatchScalar) {
  const auto simd = simd_kernels();
  if (simd.empty()) GTEST_SKIP() << "CPU has neither AVX2 nor AVX-512";
  const Kernels& ref = kernels::f32attn::scalar();
  std::mt19937 rng(3);
  for (int64_t hd : {1, 5, 8, 15, 16, 17, 33, 64, 100, 128, 130, 200, 256})
    for (int64_t len : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 37, 130}) {
      const int64_t stride = 2 * hd + 3;  // rows of one KV head among others, not aligned
      const auto k = randn(len * stride, rng), v = randn(len * stride, rng), q = randn(hd, rng);
      const auto p = randn(len, rng);
      std::vector<float> s_ref(len), o_ref(hd);
      ref.scores(q.data(), k.data(), len, stride, hd, 0.125f, s_ref.data());
      ref.accum(p.data(), v.data(), len, stride, hd, o_ref.data());
      for (const Kernels* kern : simd) {
        std::vector<float> s(len, NAN), o(hd + 1, NAN);
        kern->scores(q.data(), k.data(), len, stride, hd, 0.125f, s.data());
        kern->accum(p.data(), v.data(), len, stride, hd, o.data());
        for (int64_t j = 0; j < len; ++j) {  // f32 sums of hd terms ~1 against double
          double mag = 0;
          for (int64_t d = 0; d < hd; ++d) mag += std::fabs(q[d] * k[j * stride + d]);
          ASSERT_NEAR(s[j], s_ref[j], 1e-6 * 0.125 * mag + 1e-7) << kern->name << " hd " << hd << " len " << len;
        }
        for (int64_t d = 0; d < hd; ++d) {
          double mag = 0;
          for (int64_t j = 0; j < len; ++j) mag += std::fabs(p[j] * v[j * stride + d]);
          ASSERT_NEAR(o[d], o_ref[d], 1e-6 * mag + 1e-7) << kern->name << " hd " << hd << " len " << len << " d " << d;
        }
        EXPECT_TRUE(std::isnan(o[hd])) << kern->name << ": wrote past head_dim " << hd;
      }
    }
}

// Decode rows of kernels::attention (grouped KV heads, several lengths)
// against softmax(q k^T / sqrt(hd)) v in double.
TEST(AttentionF32, DecodeMatchesDoubleReference) {
  std::mt19937 rng(9);
  const int64_t n_heads = 4, n_kv = 2, group = n_heads / n_kv;
  for (int64_t hd : {8, 20, 64})
    for (int64_t pos0 : {0, 3, 10, 100}) {
      const int64_t L = pos0 + 1;
      const auto q = randn(n_heads * hd, rng);
      const auto k = randn(L * n_kv * hd, rng), v = randn(L * n_kv * hd, rng);  // position-major
      std::vector<float> out(n_heads * hd);
      kernels::attention(q.data(), k.data(), v.data(), out.data(), 1, pos0, n_heads, n_kv, hd);
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t g = h / group;
        std::vector<double> s(L);
        for (int64_t j = 0; j < L; ++j) {
          for (int64_t d = 0; d < hd; ++d) s[j] += double(q[h * hd + d]) * k[(j * n_kv + g) * hd + d];
          s[j] /= std::sqrt(double(hd));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (auto& x : s) z += (x = std::exp(x - mx));
        for (int64_t d = 0; d < hd; ++d) {
          double o = 0;
          for (int64_t j = 0; j < L; ++j) o += s[j] / z * v[(j * n_kv + g) * hd + d];
          ASSERT_NEAR(out[h * hd + d], o, 2e-5) << "hd " << hd << " pos0 " << pos0 << " head " << h;
        }
      }
    }
}

}  // namespace
}  // namespace shrink
