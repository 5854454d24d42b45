// The bitmask sparse GEMV (kernels/sparse_mask.h) against the dense f32 GEMV
// on the same logical shape (4096 x 1536, as bench/sparse_nm_bench.cpp),
// streaming over 512 MiB of distinct matrices (more than the L3: the decode
// situation). Gweights_s counts the logical rows x cols weights, so its ratio
// to the dense row is the decode speed-up the format gives at that sparsity;
// med_frac is the fraction of the read bandwidth reached on the bytes read.
// One thread (the matrices of a stream are rows of one big MaskMatrix, run
// through mask_rows_avx512 directly).
//   shrink_bench --benchmark_filter='Mask'
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "kernels/bandwidth.h"
#include "kernels/gemv.h"
#include "kernels/sparse_mask.h"
#include "stream.h"

namespace shrink::kernels {
namespace {

constexpr int64_t kRows = 4096, kCols = 1536, kTotal = int64_t{512} << 20;

// `rows` rows of kCols with each weight kept with probability `density` (values in [-1, 1)).
MaskMatrix random_mask(int64_t rows, double density) {
  MaskMatrix m;
  m.rows = rows, m.cols = kCols;
  m.masks.resize(static_cast<size_t>(rows * m.groups()));
  m.row_start.reserve(static_cast<size_t>(rows + 1));
  m.values.reserve(static_cast<size_t>(double(rows * kCols) * density * 1.01 + 64));
  const auto keep = static_cast<uint32_t>(density * 4294967295.0);
  uint32_t s = 12345;
  for (int64_t r = 0; r < rows; ++r) {
    m.row_start.push_back(int64_t(m.values.size()));
    for (int64_t g = 0; g < m.groups(); ++g) {
      uint16_t mask = 0;
      for (int j = 0; j < 16; ++j) {
        s = s * 1664525u + 1013904223u;
        if (s < keep) mask |= uint16_t(1u << j), m.values.push_back(static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f);
      }
      m.masks[r * m.groups() + g] = mask;
    }
  }
  m.row_start.push_back(int64_t(m.values.size()));
  return m;
}

// Arg: sparsity in percent (0: the dense f32 GEMV).
void BM_MaskStream(benchmark::State& state) {
  const int sparsity = static_cast<int>(state.range(0));
  if (!cpu_features().avx512f) return state.SkipWithError("no AVX-512F");
  const ReadBandwidth read = measure_read_bandwidth_stats(1);
  std::vector<float> x(static_cast<size_t>(kCols), 0.5f), y(static_cast<size_t>(kRows));
  if (sparsity == 0) {
    const bench::StreamLayout layout(kRows * kCols * 4, kTotal);
    std::vector<float> w(static_cast<size_t>(layout.matrices() * kRows * kCols), 0.25f);
    bench::run_stream(state, read, layout, kRows * kCols, [&](int64_t i) {
      gemv_threads(DType::F32, w.data() + i * kRows * kCols, x.data(), y.data(), kRows, kCols, 1);
      benchmark::DoNotOptimize(y.data());
    });
    state.SetLabel("dense f32");
    return;
  }
  const double density = 1.0 - sparsity / 100.0;
  const int64_t approx = kRows * ((kCols + 15) / 16 * 2 + static_cast<int64_t>(double(kCols) * density * 4));
  const bench::StreamLayout layout(approx, kTotal);
  const MaskMatrix m = random_mask(layout.matrices() * kRows, density);
  bench::run_stream(state, read, layout, kRows * kCols, [&](int64_t i) {
    mask_rows_avx512(m, i * kRows, (i + 1) * kRows, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  });
  state.SetLabel("bitmask " + std::to_string(sparsity) + "% " + mask_gemv_isa());
}
BENCHMARK(BM_MaskStream)->ArgName("sparsity")->Arg(0)->Arg(50)->Arg(70)->Arg(90)->MinTime(2.0)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace shrink::kernels
