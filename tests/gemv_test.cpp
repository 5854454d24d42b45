// Tests of the decode matrix-vector kernels: every SIMD path and the
// dispatching gemv() against the scalar reference, matmul() for several batch
// sizes, thread-count independence, no reads past the end of W or x, and the
// SHRINK_ISA cap.
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/gemv.h"
#include "kernels/gemv_simd.h"
#include "test_util.h"
#include "kernel_walks.h"

namespace shrink::kernels {
namespace {

using GemvFn = void (*)(DType, const void*, const float*, float*, int64_t, int64_t);

constexpr DType kTypes[] = {DType::F32, DType::F16, DType::BF16};
constexpr int64_t kRowsList[] = {1, 3, 17, 33, 172};
constexpr int64_t kColsList[] = {1, 7, 15, 16, 17, 31, 64, 172, 257, 1000};

// The hardware's features, ignoring SHRINK_ISA: the row kernels are called
// directly, so they can be tested even when dispatch is capped.
bool hw_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
bool hw_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// A random rows x cols weight matrix stored as `t`, plus an activation vector.
struct Problem {
  DType type;
  int64_t rows, cols;
  std::vector<uint8_t> w;
  std::vector<float> x;
};

Problem make_problem(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> wf(static_cast<size_t>(rows * cols));
  for (auto& v : wf) v = u(rng);
  Problem p{t, rows, cols, std::vector<uint8_t>(static_cast<size_t>(dtype_bytes(t, rows * cols))),
            std::vector<float>(static_cast<size_t>(cols))};
  convert_from_f32(t, wf.data(), p.w.data(), rows * cols);
  for (auto& v : p.x) v = u(rng);
  return p;
}

// Bound for an f32-accumulated dot product against the double reference: a
// small multiple of epsilon times sum |w_i x_i| (a lost or doubled term would
// be ~1/cols of that sum, far above the bound for every tested size).
std::vector<double> tolerances(const Problem& p) {
  std::vector<float> wf(static_cast<size_t>(p.rows * p.cols));
  convert_to_f32(p.type, p.w.data(), wf.data(), p.rows * p.cols);
  std::vector<double> tol(static_cast<size_t>(p.rows));
  for (int64_t r = 0; r < p.rows; ++r) {
    double l1 = 0;
    for (int64_t c = 0; c < p.cols; ++c) l1 += std::fabs(double(wf[r * p.cols + c]) * p.x[c]);
    tol[r] = 64 * double(FLT_EPSILON) * l1 + 1e-30;
  }
  return tol;
}

void expect_matches_ref(GemvFn fn, const Problem& p, const std::string& what) {
  std::vector<float> ref(static_cast<size_t>(p.rows)), got(static_cast<size_t>(p.rows), NAN);
  gemv_ref(p.type, p.w.data(), p.x.data(), ref.data(), p.rows, p.cols);
  fn(p.type, p.w.data(), p.x.data(), got.data(), p.rows, p.cols);
  const auto tol = tolerances(p);
  for (int64_t r = 0; r < p.rows; ++r)
    ASSERT_NEAR(got[r], ref[r], tol[r]) << what << " " << dtype_name(p.type) << " rows=" << p.rows
                                        << " cols=" << p.cols << " row " << r;
}

void sweep(GemvFn fn, const std::string& what) {
  uint32_t seed = 1;
  for (DType t : kTypes)
    for (int64_t rows : kRowsList)
      for (int64_t cols : kColsList) expect_matches_ref(fn, make_problem(t, rows, cols, seed++), what);
}

// matmul(t, W, x) for n random inputs against gemv_ref on each input.
void expect_matmul_matches_ref(DType t, int64_t n, int64_t rows, int64_t cols, uint32_t seed) {
  const Problem p = make_problem(t, rows, cols, seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (auto& v : x) v = u(rng);
  std::vector<float> got(static_cast<size_t>(n * rows), NAN), ref(static_cast<size_t>(rows));
  matmul(t, p.w.data(), x.data(), got.data(), n, rows, cols);
  for (int64_t i = 0; i < n; ++i) {
    Problem pi = p;
    pi.x.assign(x.begin() + i * cols, x.begin() + (i + 1) * cols);
    gemv_ref(t, p.w.data(), pi.x.data(), ref.data(), rows, cols);
    const auto tol = tolerances(pi);
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_NEAR(got[i * rows + r], ref[r], tol[r])
          << dtype_name(t) << " n=" << n << " rows=" << rows << " cols=" << cols << " at " << i << "," << r;
  }
}

// Widening is exact, so the SIMD path must agree bit for bit with convert_to_f32.
void expect_widen_exact(DType t, int64_t n) {
  const Problem p = make_problem(t, 1, n, 9);
  std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n + 1), -7.0f);
  convert_to_f32(t, p.w.data(), want.data(), n);
  widen_to_f32(t, p.w.data(), got.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << dtype_name(t) << " n=" << n << " at " << i;
  EXPECT_EQ(got[n], -7.0f) << "wrote past the end";
}

TEST(GemvKernels, Avx512MatchesReference) {
  if (!hw_avx512()) GTEST_SKIP() << "CPU lacks AVX-512F/BW/VL";
  sweep(gemv_rows_avx512, "avx512");
}

TEST(GemvKernels, Avx2MatchesReference) {
  if (!hw_avx2()) GTEST_SKIP() << "CPU lacks AVX2/FMA";
  sweep(gemv_rows_avx2, "avx2");
}

// Slabs bigger than L2 take the many-streams path (where the walk is wide); these row counts also
// trigger its 4 KiB anti-aliasing run adjustment (8195 x 256 f32: runs of
// 1024 rows of 1 KiB) and leave tail rows.
TEST(GemvKernels, LargeSlabsMatchReference) {
  std::vector<std::pair<const char*, GemvFn>> fns;
  if (hw_avx512()) fns.push_back({"avx512", gemv_rows_avx512});
  if (hw_avx2()) fns.push_back({"avx2", gemv_rows_avx2});
  uint32_t seed = 50;
  test::for_each_walk([&] {
    for (auto [name, fn] : fns)
      for (DType t : kTypes)
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{8195, 256}, {6149, 512}, {2053, 1031}})
          expect_matches_ref(fn, make_problem(t, rows, cols, seed++), name);
  });
}

TEST(GemvDispatch, MatchesReference) { sweep(gemv, std::string("gemv/") + gemv_isa()); }

// Shapes big enough for gemv() to split rows across threads (above its
// single-thread threshold), with row counts that do not divide evenly.
TEST(GemvDispatch, ThreadedShapesMatchReference) {
  uint32_t seed = 100;
  for (DType t : kTypes)
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1037, 257}, {172, 1000}, {4099, 64}, {33, 4111}})
      expect_matches_ref(gemv, make_problem(t, rows, cols, seed++), "gemv threaded");
}

// Each row is computed by one thread with the same kernel, so the thread count
// must not change a single bit of the result.
TEST(GemvDispatch, ResultIndependentOfThreadCount) {
  const int saved = omp_get_max_threads();
  for (DType t : kTypes) {
    const Problem p = make_problem(t, 2053, 515, 7);
    std::vector<float> y1(2053), y2(2053), y3(2053);
    set_num_threads(1);
    gemv(t, p.w.data(), p.x.data(), y1.data(), p.rows, p.cols);
    set_num_threads(2);
    gemv(t, p.w.data(), p.x.data(), y2.data(), p.rows, p.cols);
    set_num_threads(3);  // more threads than cores: still one slab each
    gemv(t, p.w.data(), p.x.data(), y3.data(), p.rows, p.cols);
    EXPECT_EQ(y1, y2) << dtype_name(t);
    EXPECT_EQ(y1, y3) << dtype_name(t);
  }
  set_num_threads(saved);
}

// gemv() called from inside a parallel region (e.g. per-head work) must not
// nest a team, and must still be correct.
TEST(GemvDispatch, InsideParallelRegion) {
  const Problem p = make_problem(DType::BF16, 600, 700, 11);
  std::vector<float> ref(600);
  gemv_ref(p.type, p.w.data(), p.x.data(), ref.data(), p.rows, p.cols);
  std::vector<std::vector<float>> got(4, std::vector<float>(600));
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 4; ++i) gemv(p.type, p.w.data(), p.x.data(), got[i].data(), p.rows, p.cols);
  const auto tol = tolerances(p);
  for (const auto& g : got)
    for (int64_t r = 0; r < p.rows; ++r) ASSERT_NEAR(g[r], ref[r], tol[r]);
}

using test::GuardedBuffer;

TEST(GemvKernels, NoReadsPastEndOfWeightsOrActivations) {
  std::vector<std::pair<const char*, GemvFn>> fns = {{"gemv", gemv}};
  if (hw_avx512()) fns.push_back({"avx512", gemv_rows_avx512});
  if (hw_avx2()) fns.push_back({"avx2", gemv_rows_avx2});
  // Row counts ending W with a single-row tail (5, 13) and with a full group
  // of rows walked together (8 for AVX-512, 6 and 12 for AVX2).
  for (auto [name, fn] : fns)
    for (DType t : kTypes)
      for (int64_t rows : {5, 6, 8, 12, 13})
        for (int64_t cols : {1, 7, 15, 17, 31, 33, 47}) {
          const Problem p = make_problem(t, rows, cols, 3);
          GuardedBuffer w(p.w.size()), x(p.x.size() * sizeof(float));
          std::memcpy(w.data(), p.w.data(), p.w.size());
          std::memcpy(x.data(), p.x.data(), p.x.size() * sizeof(float));
          std::vector<float> ref(static_cast<size_t>(rows)), got(static_cast<size_t>(rows));
          gemv_ref(t, p.w.data(), p.x.data(), ref.data(), rows, cols);
          fn(t, w.data(), reinterpret_cast<const float*>(x.data()), got.data(), rows, cols);
          const auto tol = tolerances(p);
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_NEAR(got[r], ref[r], tol[r]) << name << " rows=" << rows << " cols=" << cols;
        }
}

TEST(GemvDispatch, IsaFollowsCpuFeatures) {
  const auto& f = cpu_features();
  const std::string isa = gemv_isa();
  if (f.avx512f && f.avx512bw && f.avx512vl)
    EXPECT_EQ(isa, "avx512");
  else if (f.avx2 && f.fma && f.f16c)
    EXPECT_EQ(isa, "avx2");
  else
    EXPECT_EQ(isa, "scalar");
}

// Run in a child process by EnvCapSelectsPath (SHRINK_ISA is read once per
// process); skipped in a normal run.
TEST(GemvIsaCap, ChildReportsCappedIsa) {
  const char* expect = std::getenv("SHRINK_GEMV_EXPECT_ISA");
  if (!expect) GTEST_SKIP() << "only meaningful when started by GemvIsaCap.EnvCapSelectsPath";
  EXPECT_STREQ(gemv_isa(), expect);
  for (DType t : kTypes) {
    expect_matches_ref(gemv, make_problem(t, 300, 1001, 5), std::string("capped ") + expect);
    expect_widen_exact(t, 1001);
    expect_matmul_matches_ref(t, 5, 37, 129, 6);
  }
}

TEST(GemvIsaCap, EnvCapSelectsPath) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) GTEST_SKIP() << "cannot find own executable";
  self[n] = 0;
  for (const char* cap : {"avx2", "scalar"}) {
    if (std::string(cap) == "avx2" && !hw_avx2()) continue;
    const std::string cmd = std::string("SHRINK_ISA=") + cap + " SHRINK_GEMV_EXPECT_ISA=" + cap + " '" + self +
                            "' --gtest_filter=GemvIsaCap.ChildReportsCappedIsa >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
}

// matmul(): n == 1 goes through gemv, n > 1 through oneDNN; both against a
// per-row scalar reference.
TEST(GemvMatmul, MatchesReference) {
  uint32_t seed = 200;
  for (DType t : kTypes)
    for (int64_t n : {1, 2, 5, 64})
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{33, 257}, {172, 64}, {17, 1000}, {700, 300}, {3, 7}})
        expect_matmul_matches_ref(t, n, rows, cols, seed++);
}

// matmul() inside a parallel region runs on the calling thread only.
TEST(GemvMatmul, InsideParallelRegion) {
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 4; ++i) expect_matmul_matches_ref(kTypes[i % 3], 3, 100, 70, 300 + i);
}

TEST(GemvWiden, MatchesConvertToF32) {
  for (DType t : kTypes)
    for (int64_t n : {1, 7, 15, 16, 17, 31, 1000}) expect_widen_exact(t, n);
}

}  // namespace
}  // namespace shrink::kernels
