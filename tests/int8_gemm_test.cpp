// Tests of the W8A8 int8 kernels (kernels/int8_gemm.h): the activation
// quantizers (every SIMD path writes the scalar reference's bytes and scales;
// round half to even; static scales saturate), every row kernel's int32 sums
// against the scalar reference on awkward shapes and on extreme codes, the
// epilogue bit for bit, int8_matmul on all its paths (GEMV, row-kernel panels,
// oneDNN) for several n, thread-count independence, no reads past the end of
// W or x, and the SHRINK_ISA cap.
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "kernels/int8_gemm.h"
#include "test_util.h"
#include "kernel_walks.h"

namespace shrink::kernels {
namespace {

using int8_impl::DotRowsFn;
using int8_impl::QuantFn;
using int8_impl::ScaleFn;

constexpr int64_t kRowsList[] = {1, 3, 17, 255};
constexpr int64_t kColsList[] = {1, 7, 15, 16, 17, 31, 63, 64, 65, 127, 128, 129, 172, 1000};

struct Path {
  const char* name;
  DotRowsFn dot;
  ScaleFn scale;
  QuantFn quant;
};

// The SIMD paths this hardware can run (called directly: they are tested even
// when SHRINK_ISA caps the dispatch), plus the dispatching entry points.
std::vector<Path> simd_paths() {
  std::vector<Path> p;
  if (int8_impl::cpu_avx512())
    p.push_back({"avx512vnni", int8_impl::dot_rows_avx512, int8_impl::scale_avx512, int8_impl::quantize_avx512});
  if (int8_impl::cpu_avx2())
    p.push_back({"avx2", int8_impl::dot_rows_avx2, int8_impl::scale_avx2, int8_impl::quantize_avx2});
  return p;
}

std::vector<int8_t> random_codes(int64_t n, std::mt19937& rng, int lo = -128, int hi = 127) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& c : v) c = static_cast<int8_t>(d(rng));
  return v;
}

// A random W8A8 weight with its own storage.
struct Weight {
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> row_sum;
  int64_t rows, cols;
  Int8Rows view() const { return {q.data(), scale.data(), row_sum.data(), rows, cols}; }
};

Weight random_weight(int64_t rows, int64_t cols, std::mt19937& rng) {
  Weight w{random_codes(rows * cols, rng), std::vector<float>(static_cast<size_t>(rows)),
           std::vector<int32_t>(static_cast<size_t>(rows)), rows, cols};
  std::uniform_real_distribution<float> e(-12.0f, 0.0f);
  for (auto& s : w.scale) s = std::exp2(e(rng));
  int8_row_sums(w.q.data(), rows, cols, w.row_sum.data());
  return w;
}

std::vector<float> random_floats(int64_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& f : v) f = u(rng);
  return v;
}

// Float vectors compared bit for bit (NaN == NaN, -0 != +0).
void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(std::memcmp(&got[i], &want[i], sizeof(float)), 0)
        << what << " at " << i << ": " << got[i] << " vs " << want[i];
}

void expect_dot_matches_ref(DotRowsFn fn, const int8_t* W, const int32_t* rs, const int8_t* x, int64_t rows,
                            int64_t cols, const std::string& what) {
  std::vector<int32_t> want(static_cast<size_t>(rows)), got(static_cast<size_t>(rows), 0x5A5A5A5A);
  int8_impl::dot_rows_ref(W, rs, x, want.data(), rows, cols);
  fn(W, rs, x, got.data(), rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    ASSERT_EQ(got[r], want[r]) << what << " rows=" << rows << " cols=" << cols << " row " << r;
}

// ---------------------------------------------------------------------------
// Quantizers.

// Rows of assorted kinds: uniform, wide dynamic range, all zero, subnormal
// only, exact rounding ties, NaN and infinities.
std::vector<float> quant_input(int64_t n, int64_t k, std::mt19937& rng) {
  std::vector<float> x = random_floats(n * k, rng);
  std::uniform_real_distribution<float> e(-30.0f, 30.0f);
  for (int64_t i = 0; i < n; ++i) {
    float* r = x.data() + i * k;
    switch (i % 7) {
      case 1:
        for (int64_t c = 0; c < k; ++c) r[c] = std::exp2(e(rng)) * (c & 1 ? -1.0f : 1.0f);
        break;
      case 2:
        for (int64_t c = 0; c < k; ++c) r[c] = 0.0f;
        break;
      case 3:
        for (int64_t c = 0; c < k; ++c) r[c] = FLT_MIN / 4 * static_cast<float>(c % 3);
        break;
      case 4:  // amax 127 -> id 1: halves are exact ties
        for (int64_t c = 0; c < k; ++c) r[c] = static_cast<float>(static_cast<int>(c % 255) - 127) + 0.5f;
        r[k - 1] = -127.0f;
        break;
      case 5: r[k / 2] = std::numeric_limits<float>::quiet_NaN(); break;
      case 6:
        r[k / 3] = std::numeric_limits<float>::infinity();
        r[k - 1] = -r[k / 3];
        break;
      default: break;
    }
  }
  return x;
}

void expect_quant_matches_ref(QuantFn fn, int64_t n, int64_t k, float static_scale, uint32_t seed,
                              const std::string& what) {
  std::mt19937 rng(seed);
  const std::vector<float> x = quant_input(n, k, rng);
  std::vector<int8_t> want(static_cast<size_t>(n * k)), got(static_cast<size_t>(n * k) + 1, 99);
  std::vector<float> ws(static_cast<size_t>(n)), gs(static_cast<size_t>(n), -1.0f);
  int8_impl::quantize_ref(x.data(), n, k, static_scale, want.data(), ws.data());
  fn(x.data(), n, k, static_scale, got.data(), gs.data());
  for (int64_t i = 0; i < n * k; ++i)
    ASSERT_EQ(got[i], want[i]) << what << " k=" << k << " static=" << static_scale << " at " << i / k << "," << i % k
                               << " x=" << x[i];
  EXPECT_EQ(got[n * k], 99) << what << " wrote past the end";
  expect_same_bits(gs, ws, what + " scales k=" + std::to_string(k));
}

TEST(Int8Quantize, SimdMatchesReferenceBitForBit) {
  uint32_t seed = 1;
  std::vector<std::pair<std::string, QuantFn>> fns;
  for (const Path& p : simd_paths()) fns.push_back({p.name, p.quant});
  for (const auto& [name, fn] : fns)
    for (int64_t k : kColsList)
      for (float s : {0.0f, 0.01f, 3.0f}) expect_quant_matches_ref(fn, 14, k, s, seed++, name);
}

// The dispatching quantizers against the references (dynamic and static).
TEST(Int8Quantize, DispatchMatchesReference) {
  std::mt19937 rng(5);
  for (int64_t k : {1, 33, 1000}) {
    const std::vector<float> x = quant_input(9, k, rng);
    std::vector<int8_t> a(static_cast<size_t>(9 * k)), b(a.size());
    std::vector<float> sa(9), sb(9);
    quantize_rows_s8(x.data(), 9, k, a.data(), sa.data());
    quantize_rows_s8_ref(x.data(), 9, k, b.data(), sb.data());
    EXPECT_EQ(a, b) << "k=" << k;
    expect_same_bits(sa, sb, "dynamic scales");
    quantize_rows_s8_static(x.data(), 9, k, 0.02f, a.data(), sa.data());
    quantize_rows_s8_static_ref(x.data(), 9, k, 0.02f, b.data(), sb.data());
    EXPECT_EQ(a, b) << "static k=" << k;
    expect_same_bits(sa, sb, "static scales");
  }
}

// The documented semantics, on values whose codes are known by hand.
TEST(Int8Quantize, RoundsHalfToEvenAndScalesByAmax) {
  // amax 127 -> scale 1 and id 1: codes are x rounded half to even.
  const std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.0f, 3.49f, -3.51f};
  const std::vector<int8_t> want = {0, 2, 2, 0, -2, -2, 126, -127, 3, -4};
  std::vector<int8_t> q(x.size());
  float s = 0;
  quantize_rows_s8(x.data(), 1, static_cast<int64_t>(x.size()), q.data(), &s);
  EXPECT_EQ(s, 1.0f);
  EXPECT_EQ(q, want);
  quantize_rows_s8_ref(x.data(), 1, static_cast<int64_t>(x.size()), q.data(), &s);
  EXPECT_EQ(q, want) << "reference";
  // An all-zero row: scale 0, codes 0.
  const std::vector<float> z(40, 0.0f);
  std::vector<int8_t> qz(40, 5);
  quantize_rows_s8(z.data(), 1, 40, qz.data(), &s);
  EXPECT_EQ(s, 0.0f);
  EXPECT_EQ(qz, std::vector<int8_t>(40, 0));
  // The largest magnitude always maps to +-127 exactly.
  const std::vector<float> y = {0.1f, -0.37f, 0.2f};
  std::vector<int8_t> qy(3);
  quantize_rows_s8(y.data(), 1, 3, qy.data(), &s);
  EXPECT_EQ(qy[1], -127);
  EXPECT_FLOAT_EQ(s, 0.37f / 127.0f);
}

TEST(Int8Quantize, StaticSaturates) {
  std::vector<float> x(100);
  for (int i = 0; i < 100; ++i) x[i] = (i % 2 ? -1.0f : 1.0f) * static_cast<float>(i) * 0.05f;  // up to +-4.95
  x[98] = std::numeric_limits<float>::infinity();
  x[99] = -std::numeric_limits<float>::infinity();
  std::vector<int8_t> q(100);
  std::vector<float> s(1, 0.0f);
  quantize_rows_s8_static(x.data(), 1, 100, 0.01f, q.data(), s.data());  // |x| / 0.01 up to 495
  EXPECT_EQ(s[0], 0.01f);
  for (int i = 0; i < 100; ++i) {
    const float v = x[i] * (1.0f / 0.01f);
    const int want = v >= 127.0f ? 127 : v <= -127.0f ? -127 : static_cast<int>(std::nearbyint(v));
    EXPECT_EQ(q[i], want) << "x=" << x[i];
  }
  EXPECT_EQ(q[98], 127);
  EXPECT_EQ(q[99], -127);
  // scales may be omitted for a static scale; bad scales are rejected.
  quantize_rows_s8_static(x.data(), 1, 100, 0.5f, q.data(), nullptr);
  EXPECT_THROW(quantize_rows_s8_static(x.data(), 1, 100, 0.0f, q.data(), nullptr), std::exception);
  EXPECT_THROW(quantize_rows_s8_static(x.data(), 1, 100, -1.0f, q.data(), nullptr), std::exception);
}

// ---------------------------------------------------------------------------
// Row kernels (int32 sums must be exact).

TEST(Int8Kernels, RowKernelsMatchReference) {
  std::mt19937 rng(11);
  for (const Path& p : simd_paths())
    for (int64_t rows : kRowsList)
      for (int64_t cols : kColsList) {
        const Weight w = random_weight(rows, cols, rng);
        const std::vector<int8_t> x = random_codes(cols, rng);
        expect_dot_matches_ref(p.dot, w.q.data(), w.row_sum.data(), x.data(), rows, cols, p.name);
      }
}

// Largest-magnitude codes everywhere: products of +-127/-128 that would
// saturate a vpmaddubsw int16 pair sum (2 * 127 * 255 > 32767) and, with
// kInt8MaxCols columns, sums near the int32 limit.
TEST(Int8Kernels, ExtremeCodesAreExact) {
  for (const Path& p : simd_paths())
    for (int64_t cols : {int64_t{64}, int64_t{65}, int64_t{1000}, int64_t{4099}, kInt8MaxCols})
      for (int wv : {127, -127, -128})
        for (int xv : {127, -127, -128}) {
          const int64_t rows = cols > 5000 ? 3 : 9;
          std::vector<int8_t> W(static_cast<size_t>(rows * cols), static_cast<int8_t>(wv));
          std::vector<int8_t> x(static_cast<size_t>(cols), static_cast<int8_t>(xv));
          // Alternate signs in one row so both directions are covered.
          for (int64_t c = 0; c < cols; c += 2) W[c] = static_cast<int8_t>(wv == -128 ? 127 : -wv);
          std::vector<int32_t> rs(static_cast<size_t>(rows)), got(static_cast<size_t>(rows));
          int8_row_sums(W.data(), rows, cols, rs.data());
          expect_dot_matches_ref(p.dot, W.data(), rs.data(), x.data(), rows, cols, p.name);
          p.dot(W.data(), rs.data(), x.data(), got.data(), rows, cols);
          EXPECT_EQ(int64_t{got[1]}, int64_t{wv} * xv * cols) << p.name << " w=" << wv << " x=" << xv;
        }
}

// Slabs bigger than L2 take the many-streams path (where the walk is wide); these shapes also trigger
// its 4 KiB anti-aliasing run adjustment (8195 x 256: runs of 1024 rows of
// 256 bytes) and leave tail rows.
TEST(Int8Kernels, LargeSlabsMatchReference) {
  std::mt19937 rng(21);
  test::for_each_walk([&] {
    for (const Path& p : simd_paths())
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{8195, 256}, {6149, 512}, {2053, 1031}}) {
        const Weight w = random_weight(rows, cols, rng);
        const std::vector<int8_t> x = random_codes(cols, rng);
        expect_dot_matches_ref(p.dot, w.q.data(), w.row_sum.data(), x.data(), rows, cols, p.name);
      }
  });
}

// The epilogue is one fma per output in every path: bit-identical y, also
// when scaling in place (acc in y's memory), with and without bias.
TEST(Int8Kernels, EpilogueMatchesReferenceBitForBit) {
  std::mt19937 rng(31);
  std::uniform_int_distribution<int32_t> big(-(1 << 30), 1 << 30);
  for (const Path& p : simd_paths())
    for (int64_t cols : {1, 7, 8, 9, 15, 16, 17, 100, 1001})
      for (bool with_bias : {false, true})
        for (bool in_place : {false, true}) {
          const int64_t n = 3;
          std::vector<int32_t> acc(static_cast<size_t>(n * cols));
          for (auto& a : acc) a = big(rng);
          const std::vector<float> xs = random_floats(n, rng, 1e-4f, 1e-2f);
          const std::vector<float> ws = random_floats(cols, rng, 1e-4f, 1e-2f);
          const std::vector<float> b = random_floats(cols, rng, -100.0f, 100.0f);
          std::vector<float> want(static_cast<size_t>(n * cols)), got(want.size());
          int8_impl::scale_ref(acc.data(), cols, xs.data(), ws.data(), with_bias ? b.data() : nullptr, want.data(),
                               cols, n, cols);
          const int32_t* src = acc.data();
          if (in_place) {
            std::memcpy(got.data(), acc.data(), acc.size() * sizeof(int32_t));
            src = reinterpret_cast<const int32_t*>(got.data());
          }
          p.scale(src, cols, xs.data(), ws.data(), with_bias ? b.data() : nullptr, got.data(), cols, n, cols);
          expect_same_bits(got, want, std::string(p.name) + " cols=" + std::to_string(cols));
        }
}

// ---------------------------------------------------------------------------
// int8_matmul and its paths.

using MatmulFn = void (*)(const Int8Rows&, const int8_t*, const float*, const float*, float*, int64_t);

void expect_matmul_matches_ref(MatmulFn fn, int64_t n, int64_t rows, int64_t cols, bool with_bias, uint32_t seed,
                               const std::string& what) {
  std::mt19937 rng(seed);
  const Weight w = random_weight(rows, cols, rng);
  const std::vector<int8_t> xq = random_codes(n * cols, rng, -127, 127);
  const std::vector<float> xs = random_floats(n, rng, 1e-3f, 1e-1f);
  const std::vector<float> bias = random_floats(rows, rng);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want(static_cast<size_t>(n * rows)), got(want.size(), NAN);
  int8_matmul_ref(w.view(), xq.data(), xs.data(), b, want.data(), n);
  fn(w.view(), xq.data(), xs.data(), b, got.data(), n);
  expect_same_bits(
      got, want, what + " n=" + std::to_string(n) + " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
}

TEST(Int8Matmul, DispatchMatchesReference) {
  uint32_t seed = 100;
  for (int64_t n : {1, 2, 3, 17, 64})
    for (int64_t rows : kRowsList)
      for (int64_t cols : {1, 7, 63, 65, 172, 1000}) {
        expect_matmul_matches_ref(int8_matmul, n, rows, cols, seed % 2 == 0, seed,
                                  std::string("int8_matmul/") + int8_isa());
        ++seed;
      }
}

// Each strategy called directly on the same shapes (int8_matmul only uses the
// row kernels below int8_onednn_min_n() and oneDNN above).
TEST(Int8Matmul, RowKernelAndOnednnPathsMatchReference) {
  uint32_t seed = 500;
  for (int64_t n : {2, 3, 17, 64})
    for (auto [rows, cols] :
         {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {17, 65}, {255, 172}, {33, 1000}, {1037, 257}}) {
      expect_matmul_matches_ref(int8_matmul_rows, n, rows, cols, true, seed++, "rows");
      expect_matmul_matches_ref(int8_matmul_onednn, n, rows, cols, n % 2 == 0, seed++, "onednn");
    }
}

// The int32 sums before scaling, by each path, exactly.
TEST(Int8Matmul, Int32SumsExact) {
  std::mt19937 rng(600);
  for (int64_t n : {int64_t{1}, int64_t{2}, int8_onednn_min_n(), int64_t{64}})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{17, 63}, {255, 1000}, {3, 4099}}) {
      const Weight w = random_weight(rows, cols, rng);
      const std::vector<int8_t> xq = random_codes(n * cols, rng);  // -128 included
      std::vector<int32_t> want(static_cast<size_t>(n * rows)), got(want.size());
      int8_matmul_s32_ref(w.view(), xq.data(), want.data(), n);
      int8_matmul_s32(w.view(), xq.data(), got.data(), n);
      EXPECT_EQ(got, want) << "n=" << n << " rows=" << rows << " cols=" << cols;
    }
}

// Extreme codes through oneDNN (s8 x s8 -> s32 must not saturate either). On
// CPUs without AMX its s32 sums can come through f32 (seen on AMD Zen 5:
// 66112771 came back as 66112772): still exact after the epilogue's
// float(acc), the only way they are used, so that is what is checked.
TEST(Int8Matmul, OnednnExtremeCodesExact) {
  const int64_t n = 16, rows = 40, cols = 4099;
  for (int v : {127, -128}) {
    std::vector<int8_t> W(static_cast<size_t>(rows * cols), static_cast<int8_t>(v)),
        xq(static_cast<size_t>(n * cols), static_cast<int8_t>(v));
    std::vector<float> ws(rows, 1.0f), xs(n, 1.0f);
    std::vector<int32_t> rs(rows);
    int8_row_sums(W.data(), rows, cols, rs.data());
    const Int8Rows w{W.data(), ws.data(), rs.data(), rows, cols};
    std::vector<int32_t> acc(static_cast<size_t>(n * rows));
    int8_matmul_s32(w, xq.data(), acc.data(), n);
    const int64_t exact = int64_t{v} * v * cols;
    for (int32_t a : acc) {
      ASSERT_EQ(float(a), float(exact));
      ASSERT_LE(std::llabs(int64_t{a} - exact), 2);  // half an f32 ulp at 2^26
    }
  }
}

// Each row is computed by one thread with the same kernel: the thread count
// must not change a bit.
TEST(Int8Matmul, ResultIndependentOfThreadCount) {
  std::mt19937 rng(700);
  const Weight w = random_weight(2053, 515, rng);
  const std::vector<int8_t> x = random_codes(515, rng);
  const float xs = 0.01f;
  std::vector<float> y1(2053), y2(2053), y3(2053), want(2053);
  int8_gemv_threads(w.view(), x.data(), xs, nullptr, y1.data(), 1);
  int8_gemv_threads(w.view(), x.data(), xs, nullptr, y2.data(), 2);
  int8_gemv_threads(w.view(), x.data(), xs, nullptr, y3.data(), 3);
  int8_matmul_ref(w.view(), x.data(), &xs, nullptr, want.data(), 1);
  expect_same_bits(y1, want, "1 thread");
  expect_same_bits(y2, want, "2 threads");
  expect_same_bits(y3, want, "3 threads");
}

// Called from inside a parallel region: no nested team, still exact.
TEST(Int8Matmul, InsideParallelRegion) {
  std::vector<int> failures(4, 0);
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 4; ++i) {
    std::mt19937 rng(800 + i);
    const int64_t n = i == 3 ? 16 : i + 1, rows = 300, cols = 200;
    const Weight w = random_weight(rows, cols, rng);
    const std::vector<int8_t> xq = random_codes(n * cols, rng);
    const std::vector<float> xs = random_floats(n, rng, 0.1f, 1.0f);
    std::vector<float> a(static_cast<size_t>(n * rows)), b(a.size());
    int8_matmul(w.view(), xq.data(), xs.data(), nullptr, a.data(), n);
    int8_matmul_ref(w.view(), xq.data(), xs.data(), nullptr, b.data(), n);
    failures[i] = std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0;
  }
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

// int8_linear = quantize (per token or static) + int8_matmul.
TEST(Int8Matmul, LinearQuantizesThenMultiplies) {
  std::mt19937 rng(900);
  for (int64_t n : {1, 5, 20})
    for (float act_scale : {0.0f, 0.02f}) {
      const int64_t rows = 70, cols = 130;
      const Weight w = random_weight(rows, cols, rng);
      const std::vector<float> x = random_floats(n * cols, rng, -2.0f, 2.0f);
      const std::vector<float> bias = random_floats(rows, rng);
      std::vector<int8_t> xq(static_cast<size_t>(n * cols));
      std::vector<float> xs(static_cast<size_t>(n)), want(static_cast<size_t>(n * rows)), got(want.size());
      int8_impl::quantize_ref(x.data(), n, cols, act_scale, xq.data(), xs.data());
      int8_matmul_ref(w.view(), xq.data(), xs.data(), bias.data(), want.data(), n);
      int8_linear(w.view(), x.data(), act_scale, bias.data(), got.data(), n);
      expect_same_bits(got, want, "int8_linear n=" + std::to_string(n) + " static=" + std::to_string(act_scale));
    }
}

// W8A8 approximates the f32 product (a sanity check of the scale semantics).
TEST(Int8Matmul, ApproximatesFloatProduct) {
  std::mt19937 rng(950);
  const int64_t n = 4, rows = 64, cols = 512;
  const std::vector<float> wf = random_floats(rows * cols, rng), x = random_floats(n * cols, rng);
  std::vector<int8_t> q(static_cast<size_t>(rows * cols));
  std::vector<float> ws(rows), y(static_cast<size_t>(n * rows));
  std::vector<int32_t> rs(rows);
  quantize_weight_s8(wf.data(), rows, cols, q.data(), ws.data(), rs.data());
  int8_linear({q.data(), ws.data(), rs.data(), rows, cols}, x.data(), 0.0f, nullptr, y.data(), n);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < rows; ++j) {
      double d = 0;
      for (int64_t c = 0; c < cols; ++c) d += double(wf[j * cols + c]) * x[i * cols + c];
      err += (y[i * rows + j] - d) * (y[i * rows + j] - d);
      ref += d * d;
    }
  EXPECT_LT(std::sqrt(err / ref), 0.02);  // ~1% relative error for 8-bit both sides
}

TEST(Int8Matmul, RejectsBadWeights) {
  std::vector<int8_t> q(4);
  std::vector<float> s(2), y(2), xs(1, 1.0f);
  std::vector<int32_t> rs(2);
  EXPECT_THROW(int8_matmul({q.data(), s.data(), nullptr, 2, 2}, q.data(), xs.data(), nullptr, y.data(), 1),
               std::exception);
  EXPECT_THROW(
      int8_matmul({q.data(), s.data(), rs.data(), 2, kInt8MaxCols + 1}, q.data(), xs.data(), nullptr, y.data(), 1),
      std::exception);
}

// ---------------------------------------------------------------------------
// Bounds.

using test::GuardedBuffer;

TEST(Int8Kernels, NoReadsPastEndOfWeightsOrActivations) {
  std::mt19937 rng(1000);
  std::vector<Path> paths = simd_paths();
  paths.push_back({"ref", int8_impl::dot_rows_ref, int8_impl::scale_ref, int8_impl::quantize_ref});
  for (const Path& p : paths)
    for (int64_t rows : {5, 6, 8, 12, 13})
      for (int64_t cols : {1, 7, 15, 17, 31, 33, 63, 65, 127, 129}) {
        const Weight w = random_weight(rows, cols, rng);
        const std::vector<int8_t> x = random_codes(cols, rng);
        GuardedBuffer gw(w.q.size()), gx(x.size()), gf(static_cast<size_t>(cols) * sizeof(float));
        std::memcpy(gw.data(), w.q.data(), w.q.size());
        std::memcpy(gx.data(), x.data(), x.size());
        const int8_t* W = reinterpret_cast<const int8_t*>(gw.data());
        const int8_t* X = reinterpret_cast<const int8_t*>(gx.data());
        expect_dot_matches_ref(p.dot, W, w.row_sum.data(), X, rows, cols, std::string(p.name) + " guarded");
        // Quantizer reading a guarded f32 row.
        const std::vector<float> xf = random_floats(cols, rng);
        std::memcpy(gf.data(), xf.data(), xf.size() * sizeof(float));
        std::vector<int8_t> q1(static_cast<size_t>(cols)), q2(q1.size());
        float s1, s2;
        p.quant(reinterpret_cast<const float*>(gf.data()), 1, cols, 0.0f, q1.data(), &s1);
        int8_impl::quantize_ref(xf.data(), 1, cols, 0.0f, q2.data(), &s2);
        ASSERT_EQ(q1, q2) << p.name << " cols=" << cols;
      }
}

// ---------------------------------------------------------------------------
// Dispatch.

TEST(Int8Dispatch, IsaFollowsCpuFeatures) {
  const auto& f = cpu_features();
  const std::string isa = int8_isa();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512_vnni && f.fma)
    EXPECT_EQ(isa, "avx512vnni");
  else if (f.avx2 && f.fma)
    EXPECT_EQ(isa, "avx2");
  else
    EXPECT_EQ(isa, "scalar");
}

// Run in a child process by EnvCapSelectsPath (SHRINK_ISA is read once per
// process); skipped in a normal run.
TEST(Int8IsaCap, ChildReportsCappedIsa) {
  const char* expect = std::getenv("SHRINK_INT8_EXPECT_ISA");
  if (!expect) GTEST_SKIP() << "only meaningful when started by Int8IsaCap.EnvCapSelectsPath";
  EXPECT_STREQ(int8_isa(), expect);
  uint32_t seed = 1200;
  for (int64_t n : {1, 3, 17})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{300, 1001}, {17, 65}})
      expect_matmul_matches_ref(int8_matmul, n, rows, cols, true, seed++, std::string("capped ") + expect);
  std::mt19937 rng(seed);
  const std::vector<float> x = quant_input(7, 1001, rng);
  std::vector<int8_t> a(7 * 1001), b(a.size());
  std::vector<float> sa(7), sb(7);
  quantize_rows_s8(x.data(), 7, 1001, a.data(), sa.data());
  quantize_rows_s8_ref(x.data(), 7, 1001, b.data(), sb.data());
  EXPECT_EQ(a, b);
  expect_same_bits(sa, sb, "capped quantize scales");
}

TEST(Int8IsaCap, EnvCapSelectsPath) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) GTEST_SKIP() << "cannot find own executable";
  self[n] = 0;
  for (const char* cap : {"avx2", "scalar"}) {
    if (std::string(cap) == "avx2" && !int8_impl::cpu_avx2()) continue;
    const std::string cmd = std::string("SHRINK_ISA=") + cap + " SHRINK_INT8_EXPECT_ISA=" + cap + " '" + self +
                            "' --gtest_filter=Int8IsaCap.ChildReportsCappedIsa >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
}

}  // namespace
}  // namespace shrink::kernels
