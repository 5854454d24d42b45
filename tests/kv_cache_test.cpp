// The int8 KV cache: the quantizer, each ISA's attention primitives and the
// whole int8 attention against the scalar reference on awkward shapes, the
// cache's size, and the model under an int8 cache (close to f32; prefill and
// decode agree). Needs no ../shared except the last test (skipped without it).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "core/error.h"
#include "kernels/attention_q8.h"
#include "kernels/ops.h"
#include "model/random_init.h"
#include "model/sampler.h"
#include "model/transformer.h"
#include "test_util.h"

#include <nlohmann/json.hpp>

namespace shrink {
namespace {

using kernels::q8attn::Kernels;

std::vector<const Kernels*> simd_kernels() {
  std::vector<const Kernels*> out;
  if (kernels::q8attn::cpu_avx512()) out.push_back(&kernels::q8attn::avx512());
  if (kernels::q8attn::cpu_avx2()) out.push_back(&kernels::q8attn::avx2());
  return out;
}

std::vector<float> randn(int64_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(rng);
  return x;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// A quantized cache of random N(0,1) keys/values, KV-head-major: codes
// [n_kv x cap x hd], scales [n_kv x cap] (every row filled, also past the
// positions an attention call uses).
struct QCache {
  std::vector<int8_t> k, v;
  std::vector<float> ks, vs;
  QCache(int64_t cap, int64_t n_kv, int64_t hd, std::mt19937& rng)
      : k(cap * n_kv * hd), v(cap * n_kv * hd), ks(cap * n_kv), vs(cap * n_kv) {
    const auto kf = randn(cap * n_kv * hd, rng), vf = randn(cap * n_kv * hd, rng);
    kernels::quantize_rows_q8(kf.data(), k.data(), ks.data(), cap * n_kv, hd);
    kernels::quantize_rows_q8(vf.data(), v.data(), vs.data(), cap * n_kv, hd);
  }
};

TEST(KvCache, QuantizerIsSymmetricAbsmaxHalfToEven) {
  // amax 127 -> d = 1: codes are the values rounded half to even.
  std::vector<float> x = {127.0f, -127.0f, 2.5f, 3.5f, -2.5f, 0.49f, 1.5f, 0.0f};
  std::vector<int8_t> q(8);
  float d = 0;
  kernels::quantize_rows_q8(x.data(), q.data(), &d, 1, 8);
  EXPECT_FLOAT_EQ(d, 1.0f);
  EXPECT_EQ(std::vector<int8_t>(q.begin(), q.end()), (std::vector<int8_t>{127, -127, 2, 4, -2, 0, 2, 0}));
  // An all-zero row: scale 0, codes 0 (no division by zero).
  std::vector<float> z(5, 0.0f);
  kernels::quantize_rows_q8(z.data(), q.data(), &d, 1, 5);
  EXPECT_EQ(d, 0.0f);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q[i], 0);
  // Random rows: the error is at most half a step, and each row's absmax hits +-127.
  std::mt19937 rng(3);
  const int64_t rows = 50, cols = 48;
  const auto r = randn(rows * cols, rng, 3.0f);
  std::vector<int8_t> qr(rows * cols);
  std::vector<float> dr(rows);
  kernels::quantize_rows_q8(r.data(), qr.data(), dr.data(), rows, cols);
  for (int64_t i = 0; i < rows; ++i) {
    int amax = 0;
    for (int64_t c = 0; c < cols; ++c) {
      EXPECT_LE(std::fabs(dr[i] * qr[i * cols + c] - r[i * cols + c]), dr[i] * 0.5f * (1 + 1e-5f));
      amax = std::max(amax, std::abs(int(qr[i * cols + c])));
    }
    EXPECT_EQ(amax, 127);
  }
}

// The query's int16 rounding: half a step of error at most, the largest value
// at +-qmax, and qmax lowered for long heads so int32 sums cannot overflow.
TEST(KvCache, QueryCodes) {
  std::mt19937 rng(4);
  for (int64_t hd : {8, 100, 128, 1000, 4000}) {
    const auto q = randn(hd, rng);
    std::vector<int16_t> e(hd + 32, 7);
    const float d = kernels::q8attn::quantize_query(q.data(), hd, e.data());
    int amax = 0;
    for (int64_t i = 0; i < hd; ++i) {
      EXPECT_LE(std::fabs(d * e[i] - q[i]), d * 0.5f * (1 + 1e-4f));
      amax = std::max(amax, std::abs(int(e[i])));
    }
    for (int64_t i = hd; i < (hd + 31) / 32 * 32; ++i) EXPECT_EQ(e[i], 0) << "padding";
    EXPECT_LE(int64_t(amax) * 127 * hd, int64_t{2147483647});
    if (hd <= 516) {
      EXPECT_EQ(amax, 32767);
    }
  }
}

// Each SIMD path's primitives against the scalar ones, on head dims that are
// and are not multiples of 8 / 16 / 64, strided rows (several KV heads) and
// lengths around the 4-row unroll.
TEST(KvCache, PrimitivesOfEachIsaMatchScalar) {
  const auto simd = simd_kernels();
  if (simd.empty()) GTEST_SKIP() << "CPU has neither AVX2 nor AVX-512";
  const Kernels& ref = kernels::q8attn::scalar();
  std::mt19937 rng(5);
  for (int64_t hd : {2, 8, 20, 48, 64, 80, 100, 128}) {
    for (int64_t len : {1, 3, 4, 5, 37, 130}) {
      const int64_t n_kv = 3;
      QCache c(len, n_kv, hd, rng);
      const auto q = randn(hd, rng);
      std::vector<float> p = randn(len, rng);
      std::vector<int16_t> e(hd + 32);
      const float dq = kernels::q8attn::quantize_query(q.data(), hd, e.data());
      for (int64_t h : {int64_t{0}, n_kv - 1}) {
        const int8_t* k = c.k.data() + h * hd;
        const int8_t* v = c.v.data() + h * hd;
        std::vector<float> s_ref(len), s_got(len), o_ref(hd), o_got(hd);
        ref.scores(e.data(), dq, k, c.ks.data() + h, len, n_kv * hd, n_kv, hd, 0.125f, s_ref.data());
        ref.accum(p.data(), v, c.vs.data() + h, len, n_kv * hd, n_kv, hd, o_ref.data());
        for (const Kernels* kern : simd) {
          kern->scores(e.data(), dq, k, c.ks.data() + h, len, n_kv * hd, n_kv, hd, 0.125f, s_got.data());
          kern->accum(p.data(), v, c.vs.data() + h, len, n_kv * hd, n_kv, hd, o_got.data());
          // Scores are exact integer sums times the same scale product: bit-identical.
          EXPECT_EQ(s_ref, s_got) << kern->name << " hd " << hd << " len " << len;
          // f32 sums of len terms of magnitude ~1 against double sums.
          EXPECT_LT(max_abs_diff(o_ref, o_got), 1e-5f * std::sqrt(float(len)))
              << kern->name << " hd " << hd << " len " << len;
        }
      }
      // Dequantization is one multiply per value: exact.
      std::vector<float> x_ref(len * n_kv * hd), x_got(len * n_kv * hd, -1.0f);
      ref.dequant(c.k.data(), c.ks.data(), len * n_kv, hd, x_ref.data());
      for (const Kernels* kern : simd) {
        kern->dequant(c.k.data(), c.ks.data(), len * n_kv, hd, x_got.data());
        EXPECT_EQ(x_ref, x_got) << kern->name << " hd " << hd;
      }
    }
  }
}

// The whole int8 attention (decode rows and the dequantize-then-GEMM prefill
// path), with every ISA's primitives, against the scalar reference.
TEST(KvCache, AttentionOfEachIsaMatchesReference) {
  std::vector<const Kernels*> all = simd_kernels();
  all.push_back(&kernels::q8attn::scalar());
  struct Heads {
    int64_t n_heads, n_kv;
  };
  std::mt19937 rng(11);
  for (int64_t hd : {8, 48, 64, 80}) {
    for (Heads hs : {Heads{4, 4}, Heads{8, 2}, Heads{6, 1}}) {
      for (int64_t n_tokens : {1, 3, 8, 17}) {
        for (int64_t pos0 : {0, 5, 100}) {
          const int64_t L = pos0 + n_tokens, cap = L + 3;
          QCache c(cap, hs.n_kv, hd, rng);
          const auto q = randn(n_tokens * hs.n_heads * hd, rng);
          std::vector<float> ref(q.size()), got(q.size());
          kernels::attention_q8_ref(q.data(), c.k.data(), c.ks.data(), c.v.data(), c.vs.data(), ref.data(), n_tokens,
                                    pos0, hs.n_heads, hs.n_kv, hd, cap);
          for (const Kernels* kern : all) {
            std::fill(got.begin(), got.end(), 99.0f);
            kernels::q8attn::attention_with(*kern, q.data(), c.k.data(), c.ks.data(), c.v.data(), c.vs.data(),
                                            got.data(), n_tokens, pos0, hs.n_heads, hs.n_kv, hd, cap);
            // Outputs are convex combinations of values ~N(0,1): f32 vs double
            // accumulation (and the f32 GEMM path) agree to ~1e-6.
            EXPECT_LT(max_abs_diff(ref, got), 2e-5f) << kern->name << " hd " << hd << " heads " << hs.n_heads << "/"
                                                     << hs.n_kv << " n " << n_tokens << " pos0 " << pos0;
          }
          // The dispatching entry point too.
          kernels::attention_q8(q.data(), c.k.data(), c.ks.data(), c.v.data(), c.vs.data(), got.data(), n_tokens, pos0,
                                hs.n_heads, hs.n_kv, hd, cap);
          EXPECT_LT(max_abs_diff(ref, got), 2e-5f);
        }
      }
    }
  }
}

// Int8 attention is f32 attention over the dequantized cache with the queries
// on their int16 grid (and close to it without that rounding); and the f32
// attention over KV-head-major storage equals it over position-major storage.
TEST(KvCache, Int8AttentionEqualsF32AttentionOnDequantizedValues) {
  std::mt19937 rng(13);
  const int64_t hd = 64, n_heads = 8, n_kv = 2;
  for (int64_t n_tokens : {1, 16}) {
    const int64_t pos0 = 40, L = pos0 + n_tokens, cap = L + 5;
    QCache c(cap, n_kv, hd, rng);
    std::vector<float> kf(cap * n_kv * hd), vf(cap * n_kv * hd);  // head-major, like c
    kernels::q8attn::scalar().dequant(c.k.data(), c.ks.data(), cap * n_kv, hd, kf.data());
    kernels::q8attn::scalar().dequant(c.v.data(), c.vs.data(), cap * n_kv, hd, vf.data());
    std::vector<float> kp(L * n_kv * hd), vp(L * n_kv * hd);  // position-major copies
    for (int64_t h = 0; h < n_kv; ++h)
      for (int64_t j = 0; j < L; ++j)
        for (int64_t d = 0; d < hd; ++d) {
          kp[(j * n_kv + h) * hd + d] = kf[(h * cap + j) * hd + d];
          vp[(j * n_kv + h) * hd + d] = vf[(h * cap + j) * hd + d];
        }
    const auto q = randn(n_tokens * n_heads * hd, rng);
    // The queries on their int16 grid, as the int8 attention uses them.
    std::vector<float> qr(q.size());
    std::vector<int16_t> e(hd + 32);
    for (int64_t r = 0; r < n_tokens * n_heads; ++r) {
      const float dq = kernels::q8attn::quantize_query(q.data() + r * hd, hd, e.data());
      for (int64_t i = 0; i < hd; ++i) qr[r * hd + i] = dq * e[i];
    }
    std::vector<float> a(q.size()), b(q.size()), p(q.size()), u(q.size());
    kernels::attention_q8(q.data(), c.k.data(), c.ks.data(), c.v.data(), c.vs.data(), a.data(), n_tokens, pos0,
                          n_heads, n_kv, hd, cap);
    kernels::attention(qr.data(), kf.data(), vf.data(), b.data(), n_tokens, pos0, n_heads, n_kv, hd, hd, cap * hd);
    kernels::attention(qr.data(), kp.data(), vp.data(), p.data(), n_tokens, pos0, n_heads, n_kv, hd);
    kernels::attention(q.data(), kf.data(), vf.data(), u.data(), n_tokens, pos0, n_heads, n_kv, hd, hd, cap * hd);
    EXPECT_LT(max_abs_diff(a, b), 2e-5f) << "n_tokens " << n_tokens;
    EXPECT_LT(max_abs_diff(b, p), 1e-5f) << "n_tokens " << n_tokens;
    // Unrounded queries: scores move by <= 1.5e-5 of max|q| * sum|k| / sqrt(hd).
    EXPECT_LT(max_abs_diff(a, u), 2e-4f) << "n_tokens " << n_tokens;
  }
}

TEST(KvCache, Int8BytesAreAQuarterPlusScales) {
  ModelConfig c = preset_config("tiny");
  c.dim = 128, c.n_heads = 2, c.n_kv_heads = 2, c.head_dim = 64;
  for (const ModelConfig& cfg : {preset_config("tiny"), c}) {
    ModelFile f = random_model(cfg, DType::F32, 1);
    Transformer m(f);
    const int L = 100;
    const KVCache a = m.new_cache(L), b = m.new_cache(L, KvType::Int8);
    const int64_t values = int64_t(2) * cfg.n_layers * L * cfg.kv_dim();
    EXPECT_EQ(a.bytes(), values * 4);
    EXPECT_EQ(b.bytes(), values + int64_t(2) * cfg.n_layers * L * cfg.n_kv_heads * 4);
    // (1 + 4/head_dim) / 4: 0.375 for head_dim 8, 0.266 for 64.
    EXPECT_DOUBLE_EQ(double(b.bytes()) / a.bytes(), (1.0 + 4.0 / cfg.head_dim) / 4.0);
    EXPECT_EQ(b.bytes_per_pos() * L, b.bytes());
  }
}

TEST(KvCache, TypeNames) {
  EXPECT_EQ(parse_kv_type("f32"), KvType::F32);
  EXPECT_EQ(parse_kv_type("int8"), KvType::Int8);
  EXPECT_STREQ(kv_type_name(KvType::Int8), "int8");
  EXPECT_THROW(parse_kv_type("q4"), Error);
}

// Logits at every position under a cache of type t (one prefill).
std::vector<float> logits_with(Transformer& m, const std::vector<int32_t>& toks, KvType t) {
  KVCache cache = m.new_cache(static_cast<int>(toks.size()), t);
  std::vector<float> out(toks.size() * size_t(m.config().vocab_size));
  m.forward(toks.data(), static_cast<int>(toks.size()), cache, out.data(), true);
  return out;
}

void log_softmax(const float* x, int n, std::vector<double>& out) {
  out.resize(n);
  const double mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  for (int i = 0; i < n; ++i) out[i] = double(x[i]) - mx - std::log(sum);
}

// Mean over rows of KL(base || other).
double mean_kld(const std::vector<float>& base, const std::vector<float>& other, int vocab) {
  double sum = 0;
  const int64_t rows = int64_t(base.size()) / vocab;
  std::vector<double> lp, lq;
  for (int64_t i = 0; i < rows; ++i) {
    log_softmax(base.data() + i * vocab, vocab, lp);
    log_softmax(other.data() + i * vocab, vocab, lq);
    for (int j = 0; j < vocab; ++j) sum += std::exp(lp[j]) * (lp[j] - lq[j]);
  }
  return sum / double(rows);
}

// The random "tiny" model (head_dim 8, GQA 8/4; and its GPT-2 variant) under
// an int8 cache stays close to f32. Why these bounds: each cached value moves
// by at most half a step, max|x|/254 of its head (<= 0.4% of the head's
// largest value, ~0.1% RMS), and attention outputs, hence logits, move by
// about as much relative to their size. Measured here: RMS |dlogit| = 0.08-0.11%
// of the logits' standard deviation, max 0.7-1.2%, mean KLD ~1e-8. Required:
// RMS < 0.5%, max < 5%, KLD < 1e-6 (room for other seeds and compilers), and a
// nonzero difference (the int8 path did run).
TEST(KvCache, Int8LogitsCloseToF32OnRandomModel) {
  for (Arch arch : {Arch::Llama, Arch::GPT2}) {
    ModelConfig c = preset_config("tiny");
    if (arch == Arch::GPT2) c.arch = Arch::GPT2, c.n_kv_heads = c.n_heads, c.tied_embeddings = true;
    ModelFile f = random_model(c, DType::F32, 9);
    Transformer m(f);
    const auto toks = test::random_tokens(64, 17);
    const auto a = logits_with(m, toks, KvType::F32), b = logits_with(m, toks, KvType::Int8);
    double mean = 0, var = 0, ss = 0;
    for (float x : a) mean += x;
    mean /= double(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      var += (a[i] - mean) * (a[i] - mean);
      ss += double(a[i] - b[i]) * (a[i] - b[i]);
    }
    const double sd = std::sqrt(var / double(a.size())), rms = std::sqrt(ss / double(a.size()));
    const float diff = max_abs_diff(a, b);
    EXPECT_GT(diff, 0.0f);
    EXPECT_LT(rms, 0.005 * sd) << "logit sd " << sd;
    EXPECT_LT(diff, 0.05 * sd) << "logit sd " << sd;
    EXPECT_LT(mean_kld(a, b, c.vocab_size), 1e-6);
  }
}

// Prefill of 13 tokens at once equals 5 + 8 (the second prefill at pos0 > 0,
// GEMM path) equals feeding them one at a time, under the int8 cache: all
// read the same quantized keys/values.
TEST(KvCache, Int8PrefillEqualsDecode) {
  for (int n_kv : {4, 1}) {
    ModelConfig c = preset_config("tiny");
    c.n_kv_heads = n_kv;
    ModelFile f = random_model(c, DType::F32, 7);
    Transformer m(f);
    const int n = 13, V = c.vocab_size;
    const auto toks = test::random_tokens(n, 23);
    KVCache c1 = m.new_cache(32, KvType::Int8), c2 = m.new_cache(32, KvType::Int8), c3 = m.new_cache(32, KvType::Int8);
    std::vector<float> all(size_t(n) * V), split(size_t(n) * V), one(V);
    m.forward(toks.data(), n, c1, all.data(), true);
    m.forward(toks.data(), 5, c3, split.data(), true);
    m.forward(toks.data() + 5, n - 5, c3, split.data() + 5 * V, true);
    EXPECT_LT(max_abs_diff(all, split), 2e-4f);
    for (int i = 0; i < n; ++i) {
      m.forward(&toks[i], 1, c2, one.data(), false);
      float d = 0;
      for (int j = 0; j < V; ++j) d = std::max(d, std::fabs(one[j] - all[int64_t(i) * V + j]));
      EXPECT_LT(d, 2e-4f) << "position " << i;
    }
    EXPECT_EQ(c2.len, n);
    // The cache holds codes and scales, no f32 keys.
    EXPECT_TRUE(c2.k.empty());
    EXPECT_EQ(c2.qk.size(), size_t(c.n_layers) * 32 * c.kv_dim());
    EXPECT_EQ(c2.sk.size(), size_t(c.n_layers) * 32 * c.n_kv_heads);
  }
}

// The shrink binary's --kv-cache on run/eval/bench, on a random "tiny" model.
using Cmd = test::CliResult;
Cmd shrink_cmd(const std::string& args, bool merge_stderr) { return test::run_shrink(args, merge_stderr); }

TEST(KvCache, CliOption) {
  const std::string dir = test::temp_dir("kv_cli");
  const std::string model = dir + "/tiny.gguf";
  ASSERT_EQ(shrink_cmd("init --preset tiny -o " + model, true).code, 0);
  const std::string text = std::string(SHRINK_SOURCE_DIR) + "/data/demo.txt";
  // eval: the same model with an int8 cache against its f32-cache self.
  const Cmd e = shrink_cmd("eval " + model + " --ppl " + text + " --ctx 64 --chunks 4 --kv-cache int8 --base " + model +
                               " --json " + dir + "/e.json",
                           true);
  ASSERT_EQ(e.code, 0) << e.out;
  std::ifstream in(dir + "/e.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["kv_cache"], "int8");
  EXPECT_EQ(j["base_kv_cache"], "f32");
  const double kld = j["kld"];
  EXPECT_GT(kld, 0.0);
  EXPECT_LT(kld, 1e-4);
  // bench: cache bytes in the JSON, at a depth.
  const Cmd b =
      shrink_cmd("bench " + model + " -p 8 -n 4 -r 1 -t 1 -d 20 --no-bandwidth --json --kv-cache int8", false);
  ASSERT_EQ(b.code, 0) << b.out;
  const auto jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(jb["kv_cache"], "int8");
  EXPECT_EQ(jb["depth"], 20);
  const ModelConfig c = preset_config("tiny");
  EXPECT_EQ(jb["kv_bytes_per_pos"], 2 * c.n_layers * (c.kv_dim() + 4 * c.n_kv_heads));
  const int64_t per_pos = jb["kv_bytes_per_pos"];
  EXPECT_EQ(jb["kv_cache_bytes"], per_pos * (20 + 8 + 4 + 1));
  // run, and a bad type.
  EXPECT_EQ(shrink_cmd("run " + model + " -p hello -n 8 --kv-cache int8", true).code, 0);
  const Cmd bad = shrink_cmd("run " + model + " -p hello -n 8 --kv-cache q4", true);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("kv-cache"), std::string::npos) << bad.out;
}

// The real stories260K keeps its reference greedy text under an int8 cache.
TEST(KvCache, Stories260KGreedyTextUnchangedWithInt8Cache) {
  SHRINK_REQUIRE_ASSET(path, "models/stories260K/stories260K.bin");
  ModelFile f = load_model(path, test::with_tokenizer());
  Transformer m(f);
  std::vector<int32_t> ids = f.tokenizer->encode("Once upon a time", true);
  KVCache cache = m.new_cache(256, KvType::Int8);
  std::vector<float> logits(f.config.vocab_size);
  m.forward(ids.data(), int(ids.size()), cache, logits.data(), false);
  std::vector<int32_t> out = ids;
  for (int i = 0; i < 40; ++i) {
    const int32_t next = argmax(logits.data(), f.config.vocab_size);
    out.push_back(next);
    m.forward(&next, 1, cache, logits.data(), false);
  }
  const std::string ref =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
  EXPECT_EQ(f.tokenizer->decode(out).substr(0, ref.size()), ref);
}

}  // namespace
}  // namespace shrink
