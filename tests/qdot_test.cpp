// Tests of the quantized dot products (kernels/qdot.h): the activation
// quantizers (SIMD bytes == scalar bytes, ggml's rounding), the scalar
// reference against dequantize-then-dot, every SIMD path against the scalar
// reference on awkward shapes and extreme data, qgemv's thread-count
// independence and bounds, qgemv_parts, and qmatmul for several batch sizes.
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/qdot.h"
#include "kernel_walks.h"

namespace shrink::kernels {
namespace {

constexpr DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                            DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Byte offsets of the f16 fields of each block type (everything else is codes,
// any byte of which is valid).
std::vector<int> f16_fields(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q5_0: return {0};
    case DType::Q4_1: case DType::Q5_1: return {0, 2};
    case DType::Q2_K: return {80, 82};
    case DType::Q3_K: return {108};
    case DType::Q4_K: case DType::Q5_K: return {0, 2};
    case DType::Q6_K: return {208};
    default: return {};
  }
}

// Random weight blocks: random code bytes; scales of assorted magnitudes and
// signs; some all-zero blocks and some with the largest f16 scale.
std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  const int64_t bb = dtype_traits(t).block_bytes, nb = rows * cols / dtype_traits(t).block_elems;
  std::vector<uint8_t> w(static_cast<size_t>(nb * bb));
  std::uniform_int_distribution<int> byte(0, 255), pick(0, 15);
  std::uniform_real_distribution<float> mag(-12.0f, 2.0f);
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t* blk = w.data() + i * bb;
    const int kind = pick(rng);
    if (kind == 0) {
      std::memset(blk, 0, static_cast<size_t>(bb));
      continue;
    }
    for (int off : f16_fields(t)) {
      float v = std::exp2(mag(rng)) * (byte(rng) & 1 ? -1.0f : 1.0f);
      if (kind == 1) v = 65504.0f;  // f16 max
      const uint16_t h = f32_to_f16(v);
      std::memcpy(blk + off, &h, 2);
    }
  }
  return w;
}

// Activations: normal values, with all-zero runs, ties between +-amax and huge/tiny blocks.
std::vector<float> random_x(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  for (int64_t b = 0; b * 32 < n; ++b) {
    float* p = x.data() + b * 32;
    switch (b % 7) {
      case 1: std::fill(p, p + 32, 0.0f); break;
      case 3: p[3] = -4.0f, p[9] = 4.0f; break;  // two values of largest magnitude, signs differ
      case 4: for (int j = 0; j < 32; ++j) p[j] *= 1e2f; break;
      case 5: for (int j = 0; j < 32; ++j) p[j] *= 1e-4f; break;
      case 6: for (int j = 0; j < 32; ++j) p[j] = static_cast<float>(j % 5) - 2.0f; break;  // exact ties at .5 after scaling
      default: break;
    }
  }
  return x;
}

std::vector<float> dequant_w(DType t, const uint8_t* w, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  convert_to_f32(t, w, f.data(), n);
  return f;
}

// The activation codes as f32 (d * q), and for Q8_1 the f16-rounded s per block.
std::vector<float> dequant_act(DType t, const uint8_t* a, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  switch (qdot_act_type(t)) {
    case QAct::Q8_0: {
      auto* b = reinterpret_cast<const BlockQ8_0*>(a);
      for (int64_t i = 0; i < n; ++i) f[i] = f16_to_f32(b[i / 32].d) * b[i / 32].qs[i % 32];
      break;
    }
    case QAct::Q8_1: {
      auto* b = reinterpret_cast<const BlockQ8_1*>(a);
      for (int64_t i = 0; i < n; ++i) f[i] = f16_to_f32(b[i / 32].d) * b[i / 32].qs[i % 32];
      break;
    }
    case QAct::Q8_K: {
      auto* b = reinterpret_cast<const BlockQ8_K*>(a);
      for (int64_t i = 0; i < n; ++i) f[i] = b[i / 256].d * b[i / 256].qs[i % 256];
      break;
    }
  }
  return f;
}

// dot(dequantized w, dequantized a) in double, and sum |w a| (the scale of
// rounding errors). Affine 32-value types use the activation's stored s
// (f16 of d * sum(q)) for their min term, as ggml does: the exact value
// m * d * sum(q) is swapped for m * s.
struct Dot {
  double v = 0, abs = 0;
};
Dot dequant_dot(DType t, const uint8_t* w, const uint8_t* a, int64_t n) {
  const auto wf = dequant_w(t, w, n), af = dequant_act(t, a, n);
  Dot r;
  for (int64_t i = 0; i < n; ++i) {
    r.v += double(wf[i]) * af[i];
    r.abs += std::fabs(double(wf[i]) * af[i]);
  }
  if (qdot_act_type(t) == QAct::Q8_1) {
    const int64_t bb = dtype_traits(t).block_bytes;
    auto* ab = reinterpret_cast<const BlockQ8_1*>(a);
    for (int64_t b = 0; b < n / 32; ++b) {
      uint16_t mh;
      std::memcpy(&mh, w + b * bb + 2, 2);
      const double m = f16_to_f32(mh), d = f16_to_f32(ab[b].d);
      int sum = 0;
      for (int j = 0; j < 32; ++j) sum += ab[b].qs[j];
      r.v += m * (f16_to_f32(ab[b].s) - d * sum);
      r.abs += std::fabs(m * f16_to_f32(ab[b].s));
    }
  }
  // K-quant mins cancel against the scaled codes: count both parts in the error scale.
  r.abs *= 4;
  return r;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x, bool ref = true) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> a(static_cast<size_t>(qdot_act_bytes(t, n)));
  if (ref)
    quantize_act_ref(t, x.data(), a.data(), n);
  else
    quantize_act(t, x.data(), a.data(), n);
  return a;
}

struct Isa {
  const char* name;
  bool available;
  void (*rows)(DType, const void*, const void*, float*, int64_t, int64_t);
  void (*quant)(DType, const float*, void*, int64_t);
};
std::vector<Isa> isas() {
  return {{"avx512vnni", qdot_impl::cpu_avx512(), qdot_impl::rows_avx512, qdot_impl::quantize_act_avx512},
          {"avx512vnni (other Q4_0 kernel)", qdot_impl::cpu_avx512(), qdot_impl::rows_avx512_other_q4_0,
           qdot_impl::quantize_act_avx512},
          {"avx2", qdot_impl::cpu_avx2(), qdot_impl::rows_avx2, qdot_impl::quantize_act_avx2}};
}

TEST(QDot, ActivationQuantizersSimdMatchScalarBytes) {
  std::mt19937 rng(1);
  for (DType t : {DType::Q8_0, DType::Q4_1, DType::Q4_K}) {
    for (int64_t blocks : {1, 2, 7, 33}) {
      const int64_t n = blocks * dtype_traits(t).block_elems;
      const auto x = random_x(n, rng);
      const auto ref = quantize(t, x);
      for (const Isa& isa : isas()) {
        if (!isa.available) continue;
        std::vector<uint8_t> got(ref.size(), 0xAB);
        isa.quant(t, x.data(), got.data(), n);
        EXPECT_EQ(0, std::memcmp(ref.data(), got.data(), ref.size())) << isa.name << " " << dtype_name(t) << " n=" << n;
      }
    }
  }
}

TEST(QDot, ActivationQuantizersFollowGgml) {
  // Q8_0: d = amax/127 (f16), codes round(x * 127/amax) half to even.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j) - 16.0f;  // amax 16 -> x*127/16
  x[1] = 16.0f * 2.5f / 127.0f;  // exactly 2.5 after scaling: rounds to 2
  const auto a = quantize(DType::Q4_0, x);
  const auto* b = reinterpret_cast<const BlockQ8_0*>(a.data());
  EXPECT_EQ(b->d, f32_to_f16(16.0f / 127.0f));
  EXPECT_EQ(b->qs[0], -127);
  EXPECT_EQ(b->qs[1], 2);
  EXPECT_EQ(b->qs[16], 0);
  // Q8_1: s = f16(d * sum(q)).
  const auto a1 = quantize(DType::Q4_1, x);
  const auto* b1 = reinterpret_cast<const BlockQ8_1*>(a1.data());
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += b1->qs[j];
  EXPECT_EQ(b1->s, f32_to_f16(16.0f / 127.0f * static_cast<float>(sum)));
  // Q8_K: the first largest-magnitude value maps to -127, bsums are 16-value sums, zero blocks are zero.
  std::vector<float> xk(512, 0.0f);
  for (int j = 0; j < 256; ++j) xk[j] = std::sin(static_cast<float>(j));
  xk[10] = 3.0f;
  xk[20] = -3.0f;
  const auto ak = quantize(DType::Q6_K, xk);
  const auto* bk = reinterpret_cast<const BlockQ8_K*>(ak.data());
  EXPECT_EQ(bk[0].qs[10], -127);
  EXPECT_EQ(bk[0].qs[20], 127);
  EXPECT_FLOAT_EQ(bk[0].d, 1.0f / (-127.0f / 3.0f));
  for (int s = 0; s < 16; ++s) {
    int bs = 0;
    for (int j = 0; j < 16; ++j) bs += bk[0].qs[16 * s + j];
    EXPECT_EQ(bk[0].bsums[s], bs);
    EXPECT_EQ(bk[1].bsums[s], 0);
  }
  EXPECT_EQ(bk[1].d, 0.0f);
}

// The library's dequantize_act (what QAT replays) gives the values this test's own reading of the blocks gives.
TEST(QDot, DequantizeActGivesTheBlocksValues) {
  std::mt19937 rng(9);
  for (DType t : kTypes) {
    const int64_t n = 3 * dtype_traits(t).block_elems;
    const auto x = random_x(n, rng);
    const auto a = quantize(t, x);
    std::vector<float> got(static_cast<size_t>(n));
    dequantize_act(t, a.data(), got.data(), n);
    EXPECT_EQ(got, dequant_act(t, a.data(), n)) << dtype_name(t);
  }
}

TEST(QDot, ReferenceMatchesDequantizedDot) {
  std::mt19937 rng(2);
  for (DType t : kTypes) {
    const int64_t be = dtype_traits(t).block_elems;
    for (int64_t blocks : {1, 2, 3, 8, 40}) {
      const int64_t n = blocks * be;
      for (int rep = 0; rep < 4; ++rep) {
        const auto w = random_weights(t, 1, n, rng);
        const auto x = random_x(n, rng);
        const auto a = quantize(t, x);
        const Dot e = dequant_dot(t, w.data(), a.data(), n);
        const float got = vec_dot_ref(t, w.data(), a.data(), n);
        EXPECT_NEAR(got, e.v, 2e-6 * e.abs + 1e-30) << dtype_name(t) << " blocks=" << blocks;
      }
    }
  }
}

TEST(QDot, SimdMatchesReference) {
  std::mt19937 rng(3);
  for (const Isa& isa : isas()) {
    if (!isa.available) {
      std::printf("[ SKIPPED ] %s paths: CPU lacks the ISA\n", isa.name);
      continue;
    }
    for (DType t : kTypes) {
      const int64_t be = dtype_traits(t).block_elems;
      for (int64_t rows : {1, 3, 17, 33, 70}) {
        // 16 and more: whole 512-value steps of the Q4_0 AVX-512 kernel, then a remainder.
        for (int64_t blocks : {1, 2, 3, 4, 5, 7, 9, 16, 17, 35}) {
          const int64_t cols = blocks * be;
          const auto w = random_weights(t, rows, cols, rng);
          const auto x = random_x(cols, rng);
          const auto a = quantize(t, x);
          std::vector<float> ref(static_cast<size_t>(rows)), got(static_cast<size_t>(rows));
          qdot_impl::rows_ref(t, w.data(), a.data(), ref.data(), rows, cols);
          isa.rows(t, w.data(), a.data(), got.data(), rows, cols);
          const int64_t rb = dtype_bytes(t, cols);
          for (int64_t r = 0; r < rows; ++r) {
            const Dot e = dequant_dot(t, w.data() + r * rb, a.data(), cols);
            ASSERT_NEAR(got[r], ref[r], 1e-5 * e.abs + 1e-30)
                << isa.name << " " << dtype_name(t) << " rows=" << rows << " cols=" << cols << " r=" << r;
          }
        }
      }
    }
  }
}

TEST(QDot, EveryTypeHasSimdKernels) {
  for (DType t : kTypes) {
    EXPECT_TRUE(qdot_has_simd("avx512vnni", t)) << dtype_name(t);
    EXPECT_TRUE(qdot_has_simd("avx2", t)) << dtype_name(t);
  }
}

// Matrices above the streaming threshold (8 rows per group on AVX-512, 6 on
// AVX2, where the walk is wide) with a row count that is no multiple of the
// group: every row equals the same row computed alone (one-row groups), and
// the scalar reference.
void simd_row_groups_match_single_rows() {
  std::mt19937 rng(7);
  for (const Isa& isa : isas()) {
    if (!isa.available) continue;
    for (DType t : kTypes) {
      const int64_t be = dtype_traits(t).block_elems;
      const int64_t cols = (be == 32 ? 40 : 5) * be, rb = dtype_bytes(t, cols);
      const int64_t rows = ((int64_t{17} << 17) / rb) | 1;  // ~2.1 MiB (above both ISAs' thresholds), odd
      const auto w = random_weights(t, rows, cols, rng);
      const auto x = random_x(cols, rng);
      const auto a = quantize(t, x);
      std::vector<float> ref(static_cast<size_t>(rows)), got(ref.size());
      qdot_impl::rows_ref(t, w.data(), a.data(), ref.data(), rows, cols);
      isa.rows(t, w.data(), a.data(), got.data(), rows, cols);
      for (int64_t r = 0; r < rows; r += 7) {
        float one;
        isa.rows(t, w.data() + r * rb, a.data(), &one, 1, cols);
        ASSERT_EQ(got[r], one) << isa.name << " " << dtype_name(t) << " r=" << r;
        const Dot e = dequant_dot(t, w.data() + r * rb, a.data(), cols);
        ASSERT_NEAR(got[r], ref[r], 1e-5 * e.abs + 1e-30) << isa.name << " " << dtype_name(t) << " r=" << r;
      }
    }
  }
}

TEST(QDot, SimdRowGroupsMatchSingleRows) {
  test::for_each_walk([] { simd_row_groups_match_single_rows(); });
}

TEST(QDot, QgemvMatchesReferenceAndIgnoresThreadCount) {
  std::mt19937 rng(4);
  for (DType t : kTypes) {
    const int64_t be = dtype_traits(t).block_elems;
    for (int64_t rows : {1, 31, 300}) {
      const int64_t cols = (be == 32 ? 37 : 9) * be;
      const auto w = random_weights(t, rows, cols, rng);
      const auto x = random_x(cols, rng);
      std::vector<float> ref(static_cast<size_t>(rows)), y1(ref.size()), y2(ref.size()), y3(ref.size()), yd(ref.size());
      qgemv_ref(t, w.data(), x.data(), ref.data(), rows, cols);
      qgemv_threads(t, w.data(), x.data(), y1.data(), rows, cols, 1);
      qgemv_threads(t, w.data(), x.data(), y2.data(), rows, cols, 2);
      qgemv_threads(t, w.data(), x.data(), y3.data(), rows, cols, 3);
      qgemv(t, w.data(), x.data(), yd.data(), rows, cols);
      const auto a = quantize(t, x);
      const int64_t rb = dtype_bytes(t, cols);
      for (int64_t r = 0; r < rows; ++r) {
        const Dot e = dequant_dot(t, w.data() + r * rb, a.data(), cols);
        ASSERT_NEAR(y1[r], ref[r], 1e-5 * e.abs + 1e-30) << dtype_name(t) << " r=" << r;
        ASSERT_EQ(y1[r], y2[r]) << dtype_name(t) << " r=" << r;
        ASSERT_EQ(y1[r], y3[r]) << dtype_name(t) << " r=" << r;
        ASSERT_EQ(y1[r], yd[r]) << dtype_name(t) << " r=" << r;
      }
    }
  }
}

// Several matrices in one pass: each part's rows exactly as qgemv on one
// thread gives them, for parts of awkward sizes (slabs crossing part
// boundaries mid-part at 2 and 3 threads; enough bytes to be threaded).
TEST(QDot, QgemvPartsMatchQgemvPerPart) {
  std::mt19937 rng(9);
  const int max_threads = omp_get_max_threads();
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t be = dtype_traits(t).block_elems, cols = (be == 32 ? 37 : 9) * be;
    const std::vector<int64_t> sizes = {1, 47, 0, 300, 16, 2000};
    std::vector<std::vector<uint8_t>> ws;
    for (int64_t rows : sizes) ws.push_back(random_weights(t, rows, cols, rng));
    const auto x = random_x(cols, rng);
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<std::vector<float>> ys;
      std::vector<QGemvPart> parts;
      for (size_t i = 0; i < sizes.size(); ++i) ys.emplace_back(static_cast<size_t>(sizes[i]), -1.0f);
      for (size_t i = 0; i < sizes.size(); ++i) parts.push_back({ws[i].data(), ys[i].data(), sizes[i]});
      qgemv_parts(t, parts.data(), static_cast<int>(parts.size()), x.data(), cols);
      for (size_t i = 0; i < sizes.size(); ++i) {
        std::vector<float> want(static_cast<size_t>(sizes[i]));
        qgemv_threads(t, ws[i].data(), x.data(), want.data(), sizes[i], cols, 1);
        for (int64_t r = 0; r < sizes[i]; ++r) ASSERT_EQ(ys[i][r], want[r]) << dtype_name(t) << " part " << i << " r=" << r;
      }
    }
  }
  omp_set_num_threads(max_threads);
}

TEST(QDot, NoReadsPastTheEndOfWeights) {
  // The last row ends at a page boundary followed by an inaccessible page.
  const long page = sysconf(_SC_PAGESIZE);
  std::mt19937 rng(5);
  for (DType t : kTypes) {
    const int64_t be = dtype_traits(t).block_elems;
    for (int64_t blocks : {1, 3, 5, 16, 19}) {
      const int64_t rows = 3, cols = blocks * be, bytes = rows * dtype_bytes(t, cols);
      const size_t span = static_cast<size_t>((bytes + page - 1) / page * page);
      auto* mem = static_cast<uint8_t*>(mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      ASSERT_NE(mem, MAP_FAILED);
      ASSERT_EQ(0, mprotect(mem + span, static_cast<size_t>(page), PROT_NONE));
      const auto w = random_weights(t, rows, cols, rng);
      uint8_t* wp = mem + span - bytes;
      std::memcpy(wp, w.data(), static_cast<size_t>(bytes));
      const auto x = random_x(cols, rng);
      std::vector<float> y(rows), ref(rows);
      qgemv(t, wp, x.data(), y.data(), rows, cols);
      qgemv_ref(t, wp, x.data(), ref.data(), rows, cols);
      for (int64_t r = 0; r < rows; ++r) EXPECT_NEAR(y[r], ref[r], 1e-4 * (std::fabs(ref[r]) + 1e-20)) << dtype_name(t);
      munmap(mem, span + page);
    }
  }
}

TEST(QDot, QmatmulMatchesQgemvAndDequantizedProduct) {
  std::mt19937 rng(6);
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q6_K, DType::Q3_K}) {
    const int64_t be = dtype_traits(t).block_elems, rows = 45, cols = 4 * be;
    // Moderate data: no extreme blocks, so the f32 comparison is meaningful.
    std::vector<uint8_t> w = random_weights(t, rows, cols, rng);
    const auto wf = dequant_w(t, w.data(), rows * cols);
    for (int64_t n : {int64_t{2}, int64_t{3}, qmatmul_dequant_min_n(t) - 1, qmatmul_dequant_min_n(t), int64_t{19}}) {
      std::normal_distribution<float> nd;
      std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows)), yv(static_cast<size_t>(rows));
      for (auto& v : x) v = nd(rng);
      qmatmul(t, w.data(), x.data(), y.data(), n, rows, cols);
      for (int64_t i = 0; i < n; ++i) {
        qgemv(t, w.data(), x.data() + i * cols, yv.data(), rows, cols);
        for (int64_t r = 0; r < rows; ++r) {
          double exact = 0, abs = 0;
          for (int64_t c = 0; c < cols; ++c) {
            exact += double(wf[r * cols + c]) * x[i * cols + c];
            abs += std::fabs(double(wf[r * cols + c]) * x[i * cols + c]);
          }
          const float got = y[i * rows + r];
          if (n < qmatmul_dequant_min_n(t)) {
            ASSERT_EQ(got, yv[r]) << dtype_name(t) << " n=" << n;  // the same quantized dots
          } else {
            ASSERT_NEAR(got, exact, 1e-5 * abs + 1e-30) << dtype_name(t) << " n=" << n;  // f32 product
          }
          // Either way close to the exact product (8-bit activations: ~1% of sum |w x|).
          ASSERT_NEAR(got, exact, 3e-2 * abs + 1e-30) << dtype_name(t) << " n=" << n;
        }
      }
    }
  }
}

TEST(QDot, DispatchReportsIsa) {
  const std::string isa = qdot_isa();
  EXPECT_TRUE(isa == "avx512vnni" || isa == "avx2" || isa == "scalar") << isa;
  if (const char* cap = std::getenv("SHRINK_ISA")) {
    if (std::string(cap) == "scalar") {
      EXPECT_EQ(isa, "scalar");
    }
    if (std::string(cap) == "avx2") {
      EXPECT_NE(isa, "avx512vnni");
    }
  }
  EXPECT_TRUE(qdot_has_simd("avx512vnni", DType::Q4_K));
  EXPECT_FALSE(qdot_supported(DType::F32));
  EXPECT_THROW(qgemv(DType::Q4_K, nullptr, nullptr, nullptr, 1, 100), std::exception);
}

}  // namespace
}  // namespace shrink::kernels
