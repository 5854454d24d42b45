// Tests of the repacked Q4_0 / Q4_K decode GEMVs (kernels/repack_x16.h): the
// repack is lossless, the scalar reference agrees with ggml-order qgemv_ref
// to float rounding, the AVX-512 kernel equals the scalar reference exactly on
// awkward shapes (odd block counts, one group, remainders of the stream
// runs), and results do not depend on the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/repack_x16.h"
#include "kernels/qdot.h"
#include "model/linear.h"
#include "kernel_walks.h"

namespace shrink::kernels {
namespace {

// Random rows of type t: random code bytes; scales of assorted magnitudes and
// signs (Q4_0 d; Q4_K d and dmin, whose 6-bit sub-scales are random bytes); some zero blocks.
std::vector<uint8_t> random_rows(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  const int64_t bb = dtype_traits(t).block_bytes, nb = rows * cols / dtype_traits(t).block_elems;
  std::vector<uint8_t> w(static_cast<size_t>(nb * bb));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(-10.0f, 1.0f);
  for (uint8_t& b : w) b = static_cast<uint8_t>(byte(rng));
  const int n_f16 = t == DType::Q4_0 ? 1 : 2;  // d (and dmin) at the start of the block
  for (int64_t i = 0; i < nb; ++i)
    for (int f = 0; f < n_f16; ++f) {
      const float v = byte(rng) < 16 ? 0.0f : std::exp2(mag(rng)) * (byte(rng) & 1 ? -1.0f : 1.0f);
      const uint16_t h = f32_to_f16(v);
      std::memcpy(w.data() + i * bb + 2 * f, &h, 2);
    }
  return w;
}

std::vector<float> random_x(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = nd(rng);
  if (n > 40) x[7] = 30.0f;  // an outlier, so some blocks have a large scale
  return x;
}

struct Case {
  DType t;
  int64_t rows, cols;
};
// One group; odd block counts (Q4_0: 1, 3, 5 blocks); 7 groups (runs of 2 and
// 4 leave a remainder); slabs big enough for the streamed path.
constexpr Case kCases[] = {{DType::Q4_0, 16, 32},    {DType::Q4_0, 16, 96},    {DType::Q4_0, 48, 160},
                           {DType::Q4_0, 112, 64},   {DType::Q4_0, 112, 2080}, {DType::Q4_0, 1024, 4096},
                           {DType::Q4_K, 16, 256},   {DType::Q4_K, 48, 768},   {DType::Q4_K, 112, 2816},
                           {DType::Q4_K, 1024, 4096}};

std::string name(const Case& c) {
  return std::string(dtype_name(c.t)) + " " + std::to_string(c.rows) + "x" + std::to_string(c.cols);
}

std::vector<uint8_t> repacked(const Case& c, const std::vector<uint8_t>& w) {
  std::vector<uint8_t> p(static_cast<size_t>(x16_bytes(c.t, c.rows, c.cols)));
  x16_repack(c.t, w.data(), c.rows, c.cols, p.data());
  return p;
}

TEST(RepackX16, RoundTripsEveryRow) {
  std::mt19937 rng(1);
  for (const Case& c : kCases) {
    const std::vector<uint8_t> w = random_rows(c.t, c.rows, c.cols, rng), p = repacked(c, w);
    const int64_t row_bytes = dtype_bytes(c.t, c.cols);
    std::vector<uint8_t> row(static_cast<size_t>(row_bytes));
    for (int64_t r = 0; r < c.rows; ++r) {
      x16_unpack_row(c.t, p.data(), r, c.cols, row.data());
      ASSERT_EQ(0, std::memcmp(row.data(), w.data() + r * row_bytes, static_cast<size_t>(row_bytes)))
          << name(c) << " row " << r;
    }
  }
}

// The ggml bytes of whole groups, plus the Q4_0 odd-block pad, plus one cache line per group
// when the group's tiles are an even number of lines (group_stride's de-aliasing).
TEST(RepackX16, SizeIsTheGgmlBytesPlusPads) {
  EXPECT_EQ(x16_bytes(DType::Q4_0, 32, 4096), dtype_bytes(DType::Q4_0, 32 * 4096) + 2 * 64);  // 64 tiles of 9 lines
  EXPECT_EQ(x16_bytes(DType::Q4_0, 16, 96), dtype_bytes(DType::Q4_0, 16 * 128) + 64);         // 3 blocks padded to 4
  EXPECT_EQ(x16_bytes(DType::Q4_0, 40, 96), 2 * x16_bytes(DType::Q4_0, 16, 96));               // only whole groups
  EXPECT_EQ(x16_bytes(DType::Q4_0, 16, 32), dtype_bytes(DType::Q4_0, 16 * 64));               // one tile: 9 lines, odd
  EXPECT_EQ(x16_bytes(DType::Q4_K, 48, 768), dtype_bytes(DType::Q4_K, 48 * 768) + 3 * 64);    // 3 tiles of 36 lines
  EXPECT_FALSE(x16_supported(DType::Q8_0));
}

TEST(RepackX16, ReferenceMatchesGgmlOrderQgemv) {
  std::mt19937 rng(2);
  for (const Case& c : kCases) {
    const std::vector<uint8_t> w = random_rows(c.t, c.rows, c.cols, rng), p = repacked(c, w);
    const std::vector<float> x = random_x(c.cols, rng);
    std::vector<float> want(static_cast<size_t>(c.rows)), got(want.size());
    qgemv_ref(c.t, w.data(), x.data(), want.data(), c.rows, c.cols);
    x16_gemv_ref(c.t, p.data(), x.data(), got.data(), c.rows, c.cols);
    // Same integer products and per-block scales; only the f32 summation order
    // differs, so compare against the sum of |per-block terms| (the dequantized row's scale).
    std::vector<float> wf(static_cast<size_t>(c.cols));
    for (int64_t r = 0; r < c.rows; ++r) {
      convert_to_f32(c.t, w.data() + r * dtype_bytes(c.t, c.cols), wf.data(), c.cols);
      double mag = 0;
      for (int64_t j = 0; j < c.cols; ++j) mag += std::fabs(wf[j] * x[j]);
      ASSERT_NEAR(got[r], want[r], 1e-5 * mag + 1e-6) << name(c) << " row " << r;
    }
  }
}

TEST(RepackX16, Avx512EqualsReferenceExactlyAtAnyThreadCount) {
  if (!x16_available()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU (or SHRINK_ISA caps it)";
  std::mt19937 rng(3);
  for (const Case& c : kCases) {
    const std::vector<uint8_t> w = random_rows(c.t, c.rows, c.cols, rng), p = repacked(c, w);
    const std::vector<float> x = random_x(c.cols, rng);
    std::vector<float> want(static_cast<size_t>(c.rows));
    x16_gemv_ref(c.t, p.data(), x.data(), want.data(), c.rows, c.cols);
    test::for_each_walk([&] {
      for (int threads : {1, 2, 3}) {
        std::vector<float> got(want.size(), NAN);
        x16_gemv_threads(c.t, p.data(), x.data(), got.data(), c.rows, c.cols, threads);
        for (int64_t r = 0; r < c.rows; ++r)
          ASSERT_EQ(got[r], want[r]) << name(c) << " row " << r << ", " << threads << " threads";
      }
    });
  }
}

// x16_gemv_parts (decode's q/k/v, gate/up in one pass) gives each part exactly
// what x16_gemv gives it alone, whichever slab boundaries the parts straddle.
TEST(RepackX16, PartsEqualEachPartAlone) {
  if (!x16_available()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU (or SHRINK_ISA caps it)";
  std::mt19937 rng(5);
  for (const auto& [t, cols] : {std::pair{DType::Q4_0, int64_t{1536}}, std::pair{DType::Q4_K, int64_t{2048}}}) {
    const std::vector<int64_t> rows = {1024, 256, 48, 16};
    const std::vector<float> x = random_x(cols, rng);
    std::vector<std::vector<uint8_t>> packed;
    std::vector<std::vector<float>> want, got;
    std::vector<X16Part> parts;
    for (int64_t r : rows) {
      const Case c{t, r, cols};
      packed.push_back(repacked(c, random_rows(t, r, cols, rng)));
      want.emplace_back(static_cast<size_t>(r));
      got.emplace_back(static_cast<size_t>(r), NAN);
      x16_gemv_threads(t, packed.back().data(), x.data(), want.back().data(), r, cols, 1);
    }
    for (size_t i = 0; i < rows.size(); ++i) parts.push_back({packed[i].data(), got[i].data(), rows[i]});
    x16_gemv_parts(t, parts.data(), static_cast<int>(parts.size()), x.data(), cols);
    for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(got[i], want[i]) << dtype_name(t) << " part " << i;
  }
}

TEST(RepackX16, RejectsShapesItCannotHold) {
  std::vector<uint8_t> p(1 << 16);
  std::vector<float> x(512), y(24);
  if (x16_available()) {
    EXPECT_THROW(x16_gemv(DType::Q4_0, p.data(), x.data(), y.data(), 24, 64), Error);  // rows not a multiple of 16
    EXPECT_THROW(x16_gemv(DType::Q4_0, p.data(), x.data(), y.data(), 16, 48), Error);  // cols not a multiple of 32
    EXPECT_THROW(x16_gemv(DType::Q4_K, p.data(), x.data(), y.data(), 16, 288), Error);  // nor of 256
  }
  EXPECT_THROW(x16_gemv_ref(DType::Q4_0, p.data(), x.data(), y.data(), 24, 64), Error);
  EXPECT_THROW(x16_gemv_ref(DType::Q8_0, p.data(), x.data(), y.data(), 16, 64), Error);  // no layout
}

// The decode path a BlockWeight takes with SHRINK_REPACK=1: whole groups from
// the repacked copy, the rows after them (here 8 and 4) from the ggml rows;
// both agree with qgemv.
TEST(RepackX16, BlockWeightDecodesRepackedGroupsAndTheRemainingRows) {
  setenv("SHRINK_REPACK", "1", 1);  // read at each weight's first single-token product
  std::mt19937 rng(4);
  for (const Case c : {Case{DType::Q4_0, 40, 96}, Case{DType::Q4_K, 20, 512}}) {
    const std::vector<uint8_t> w = random_rows(c.t, c.rows, c.cols, rng);
    Tensor t = Tensor::alloc(c.t, {c.rows, c.cols});
    std::memcpy(t.data, w.data(), w.size());
    const BlockWeight weight(t);
    const std::vector<float> x = random_x(c.cols, rng);
    std::vector<float> want(static_cast<size_t>(c.rows)), got(want.size());
    qgemv(c.t, w.data(), x.data(), want.data(), c.rows, c.cols);
    weight.matmul(x.data(), got.data(), 1);
    const int64_t tiled = x16_available() ? c.rows / kX16Rows * kX16Rows : 0;
    for (int64_t r = 0; r < c.rows; ++r) {
      if (r >= tiled) {
        ASSERT_EQ(got[r], want[r]) << name(c) << " row " << r;  // the same kernel
      } else {
        ASSERT_NEAR(got[r], want[r], 1e-4 * (std::fabs(want[r]) + 1)) << name(c) << " row " << r;
      }
    }
  }
  unsetenv("SHRINK_REPACK");
}

}  // namespace
}  // namespace shrink::kernels
