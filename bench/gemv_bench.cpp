// Benchmarks of the decode matrix-vector kernels: GEMV on llama-500m-like
// shapes (weight bytes/s), the machine's streaming read bandwidth, and GEMV
// over >= 1 GiB of distinct matrices (no cache reuse) as a fraction of that
// bandwidth at the same thread count — the figure decode speed depends on.
//   shrink_bench --benchmark_filter='Gemv|ReadBandwidth'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/bandwidth.h"
#include "kernels/gemv.h"

namespace shrink::kernels {
namespace {

constexpr DType kTypes[] = {DType::F32, DType::F16, DType::BF16};

// Deterministic weights in [-1, 1) (values only need to be ordinary floats:
// denormals or NaNs could slow the arithmetic and distort the figures).
Tensor random_weights(DType t, int64_t rows, int64_t cols) {
  std::vector<float> f(static_cast<size_t>(rows * cols));
  uint32_t s = 12345;
  for (auto& v : f) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
  Tensor w = Tensor::alloc(t, {rows, cols});
  convert_from_f32(t, f.data(), w.data, rows * cols);
  return w;
}

void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double bw = 0;
  for (auto _ : state) bw = measure_read_bandwidth(threads);
  state.counters["read_GBps"] = bw / 1e9;
}
BENCHMARK(BM_ReadBandwidth)->ArgName("threads")->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kMillisecond);

// One matrix, reused every iteration: whatever of it fits in cache stays there.
void BM_Gemv(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t rows = state.range(1), cols = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const Tensor w = random_weights(t, rows, cols);
  std::vector<float> x(static_cast<size_t>(cols), 0.5f), y(static_cast<size_t>(rows));
  for (auto _ : state) {
    gemv_threads(t, w.data, x.data(), y.data(), rows, cols, threads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * w.nbytes());
  state.SetLabel(std::string(dtype_name(t)) + " " + gemv_isa());
}
BENCHMARK(BM_Gemv)
    ->ArgNames({"dtype", "rows", "cols", "threads"})
    ->ArgsProduct({{0, 1, 2}, {4096}, {1536}, {1, 2}})
    ->ArgsProduct({{0, 1, 2}, {1536}, {4096}, {1, 2}})
    ->ArgsProduct({{0, 1, 2}, {32000}, {1536}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Small layers through the dispatching gemv() and forced onto 2 threads: where
// the two cross is where gemv()'s single-thread threshold belongs.
void BM_GemvSmall(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));  // 0: gemv()'s own choice
  const Tensor w = random_weights(DType::F32, n, n);
  std::vector<float> x(static_cast<size_t>(n), 0.5f), y(static_cast<size_t>(n));
  for (auto _ : state) {
    if (threads == 0)
      gemv(DType::F32, w.data, x.data(), y.data(), n, n);
    else
      gemv_threads(DType::F32, w.data, x.data(), y.data(), n, n, threads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * w.nbytes());
}
BENCHMARK(BM_GemvSmall)
    ->ArgNames({"n", "threads"})
    ->ArgsProduct({{64, 128, 256, 512, 1024}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Decode-like streaming: cycle through distinct 4096x1536 matrices (an MLP
// projection of a ~500M model) totalling >= 1 GiB, so every byte comes from
// DRAM. One iteration = a group of matrices of >= 64 MiB. Reports the mean
// (bytes_per_second, bw_frac) and, like measure_read_bandwidth, the best group
// (best_GBps, best_frac) — on a shared machine the best group is the one no
// other process interfered with. Fractions are of measure_read_bandwidth(threads).
void BM_GemvStream(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int threads = static_cast<int>(state.range(1));
  constexpr int64_t rows = 4096, cols = 1536;
  // Measured afresh next to each run (the machine's bandwidth drifts with
  // what else runs on the host), and before the weights exist so the two
  // 1 GiB buffers never coexist.
  const double bw = measure_read_bandwidth(threads);
  const int64_t mat_bytes = dtype_bytes(t, rows * cols);
  const int64_t group = ((int64_t{64} << 20) + mat_bytes - 1) / mat_bytes;
  const int64_t groups = ((int64_t{1} << 30) + group * mat_bytes - 1) / (group * mat_bytes);
  const Tensor w = random_weights(t, groups * group * rows, cols);
  std::vector<float> x(static_cast<size_t>(cols), 0.5f), y(static_cast<size_t>(rows));
  int64_t g = 0;
  double best_dt = 1e30;
  for (auto _ : state) {
    const double t0 = now_seconds();
    for (int64_t m = g * group; m < (g + 1) * group; ++m) {
      gemv_threads(t, static_cast<const char*>(w.data) + m * mat_bytes, x.data(), y.data(), rows, cols, threads);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    best_dt = std::min(best_dt, now_seconds() - t0);
    g = g + 1 == groups ? 0 : g + 1;
  }
  const double group_bytes = static_cast<double>(group * mat_bytes);
  state.SetBytesProcessed(state.iterations() * group * mat_bytes);
  state.counters["read_GBps"] = bw / 1e9;
  state.counters["bw_frac"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * group_bytes / bw, benchmark::Counter::kIsRate);
  state.counters["best_GBps"] = group_bytes / best_dt / 1e9;
  state.counters["best_frac"] = group_bytes / best_dt / bw;
  state.SetLabel(std::string(dtype_name(t)) + " " + gemv_isa());
}
BENCHMARK(BM_GemvStream)
    ->ArgNames({"dtype", "threads"})
    ->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->MinTime(2.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Prefill-style products through matmul(): n activations against one weight.
void BM_Matmul(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n = state.range(1), rows = 4096, cols = 1536;
  const Tensor w = random_weights(t, rows, cols);
  std::vector<float> x(static_cast<size_t>(n * cols), 0.5f), y(static_cast<size_t>(n * rows));
  for (auto _ : state) {
    matmul(t, w.data, x.data(), y.data(), n, rows, cols);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * static_cast<double>(state.iterations()) * n * rows * cols / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(dtype_name(t)));
}
BENCHMARK(BM_Matmul)->ArgNames({"dtype", "n"})->ArgsProduct({{0, 1, 2}, {2, 8, 64}})->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shrink::kernels
