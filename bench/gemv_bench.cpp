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
#include "stream.h"

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
  ReadBandwidth bw;
  for (auto _ : state) bw = measure_read_bandwidth_stats(threads);
  state.counters["read_GBps"] = bw.best / 1e9;
  state.counters["read_med_GBps"] = bw.median / 1e9;
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
// DRAM. One iteration = a group of matrices of >= 64 MiB (counters: bench/stream.h).
void BM_GemvStream(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int threads = static_cast<int>(state.range(1));
  constexpr int64_t rows = 4096, cols = 1536;
  // Measured afresh next to each run (the machine's bandwidth drifts with
  // what else runs on the host), and before the weights exist so the two
  // 1 GiB buffers never coexist.
  const ReadBandwidth read = measure_read_bandwidth_stats(threads);
  const bench::StreamLayout layout(dtype_bytes(t, rows * cols));
  const Tensor w = random_weights(t, layout.matrices() * rows, cols);
  std::vector<float> x(static_cast<size_t>(cols), 0.5f), y(static_cast<size_t>(rows));
  bench::run_stream(state, read, layout, rows * cols, [&](int64_t m) {
    gemv_threads(t, static_cast<const char*>(w.data) + m * layout.mat_bytes, x.data(), y.data(), rows, cols, threads);
    benchmark::DoNotOptimize(y.data());
  });
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
