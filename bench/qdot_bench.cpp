// Benchmarks of the block-quantized decode kernels (kernels/qdot.h):
//   BM_QGemvStream  qgemv over >= 1 GiB of distinct 4096x4096 matrices (every
//                   byte from DRAM) per weight type, 1 and 2 threads, as weight
//                   GB/s and as a fraction of measure_read_bandwidth at the same
//                   thread count; dtype F32 is kernels::gemv on the same shape,
//                   the baseline for the ratio.
//   BM_QGemvCached  one 1024 x 4096 matrix reused (in L2 or L3 by type).
//   BM_QGemvL2      one 256 x 4096 matrix reused, in L2 for every type: the
//                   compute ceiling of the kernels.
//   BM_QMatmul      prefill: quantized dots vs dequantize+sgemm, by batch size n
//                   (where they cross is qmatmul_dequant_min_n).
//   shrink_bench --benchmark_filter='QGemv|QMatmul'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/bandwidth.h"
#include "stream.h"
#include "kernels/gemv.h"
#include "kernels/repack_x16.h"
#include "kernels/qdot.h"

namespace shrink::kernels {
namespace {

constexpr DType kTypes[] = {DType::F32,  DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                            DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q4_0, DType::Q4_K};
// Type indices 11, 12: Q4_0 and Q4_K repacked into 16-row tiles (kernels/repack_x16.h), the
// decode path on AVX-512 VNNI.
constexpr int kFirstRepacked = 11;

// Offsets of the f16 scale fields in a block (everything else is codes).
std::vector<int> f16_fields(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q5_0: return {0};
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: return {0, 2};
    case DType::Q2_K: return {80, 82};
    case DType::Q3_K: return {108};
    case DType::Q6_K: return {208};
    default: return {};
  }
}

// `rows` x `cols` weights of type t: random codes, ordinary scales (values
// only need to be ordinary numbers), fast enough for a 1 GiB buffer.
Tensor random_weights(DType t, int64_t rows, int64_t cols) {
  Tensor w = Tensor::alloc(t, {rows, cols});
  auto* p = static_cast<uint8_t*>(w.data);
  const int64_t bytes = w.nbytes();
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int64_t i = 0; i + 8 <= bytes; i += 8) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    std::memcpy(p + i, &s, 8);
  }
  if (t == DType::F32) {
    auto* f = static_cast<float*>(w.data);
    for (int64_t i = 0; i < rows * cols; ++i) f[i] = static_cast<float>((p[4 * i] & 63)) * (1.0f / 32) - 1.0f;
    return w;
  }
  const int64_t bb = dtype_traits(t).block_bytes, nb = bytes / bb;
  const uint16_t h = f32_to_f16(0.01f);
  for (int64_t b = 0; b < nb; ++b)
    for (int off : f16_fields(t)) std::memcpy(p + b * bb + off, &h, 2);
  return w;
}

// Bytes of one rows x cols matrix of type index i.
int64_t matrix_bytes(int i, int64_t rows, int64_t cols) {
  return i >= kFirstRepacked ? x16_bytes(kTypes[i], rows, cols) : dtype_bytes(kTypes[i], rows * cols);
}

// The benchmark's weights for type index i (from kFirstRepacked on: repacked, as bytes; a
// multiple of 16 rows is a whole number of repacked matrices of any such height).
Tensor weights_for(int i, int64_t rows, int64_t cols) {
  Tensor w = random_weights(kTypes[i], rows, cols);
  if (i < kFirstRepacked) return w;
  Tensor packed = Tensor::alloc(DType::I8, {x16_bytes(kTypes[i], rows, cols)});
  x16_repack(kTypes[i], w.data, rows, cols, packed.data);
  return packed;
}

std::vector<float> activations(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  return x;
}

void run(int i, const void* w, const float* x, float* y, int64_t rows, int64_t cols, int threads) {
  const DType t = kTypes[i];
  if (i >= kFirstRepacked)
    x16_gemv_threads(t, w, x, y, rows, cols, threads);
  else if (t == DType::F32)
    gemv_threads(t, w, x, y, rows, cols, threads);
  else
    qgemv_threads(t, w, x, y, rows, cols, threads);
}

std::string label(int i) {
  const DType t = kTypes[i];
  if (i >= kFirstRepacked) return std::string(dtype_name(t)) + " repacked x16 avx512vnni";
  return std::string(dtype_name(t)) + " " + (t == DType::F32 ? gemv_isa() : qdot_isa()) +
         (t != DType::F32 && !qdot_has_simd(qdot_isa(), t) ? " (scalar fallback)" : "");
}

// Decode-like streaming, as BM_GemvStream in gemv_bench.cpp: cycle through
// distinct matrices totalling >= 1 GiB, one iteration = a group of >= 64 MiB
// (counters: bench/stream.h).
void BM_QGemvStream(benchmark::State& state) {
  const int i = static_cast<int>(state.range(0));
  const DType t = kTypes[i];
  const int threads = static_cast<int>(state.range(1));
  constexpr int64_t rows = 4096, cols = 4096;
  const ReadBandwidth read = measure_read_bandwidth_stats(threads);
  const bench::StreamLayout layout(matrix_bytes(i, rows, cols));
  const Tensor w = weights_for(i, layout.matrices() * rows, cols);
  const std::vector<float> x = activations(cols);
  std::vector<float> y(static_cast<size_t>(rows));
  bench::run_stream(state, read, layout, rows * cols, [&](int64_t m) {
    run(i, static_cast<const char*>(w.data) + m * layout.mat_bytes, x.data(), y.data(), rows, cols, threads);
    benchmark::DoNotOptimize(y.data());
  });
  state.SetLabel(label(i));
}
BENCHMARK(BM_QGemvStream)
    ->ArgNames({"dtype", "threads"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {1, 2}})
    ->MinTime(2.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One 1024 x 4096 matrix reused (1.3-4.3 MiB for the quantized types: in L2 or partly in L3):
// how fast the kernels compute when memory is not the limit.
void BM_QGemvCached(benchmark::State& state) {
  const int i = static_cast<int>(state.range(0));
  const DType t = kTypes[i];
  const int threads = static_cast<int>(state.range(1));
  constexpr int64_t rows = 1024, cols = 4096;
  const Tensor w = weights_for(i, rows, cols);
  const std::vector<float> x = activations(cols);
  std::vector<float> y(static_cast<size_t>(rows));
  for (auto _ : state) {
    run(i, w.data, x.data(), y.data(), rows, cols, threads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * w.nbytes());
  state.counters["Gweights_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * rows * cols / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(label(i));
}
BENCHMARK(BM_QGemvCached)
    ->ArgNames({"dtype", "threads"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// One 256 x 4096 matrix reused (0.3-1.1 MiB: in L2 for every type, where
// BM_QGemvCached's 2.3 MiB Q4_0/Q4_K and 4.4 MiB Q8_0 matrices spill to L3 on
// CPUs with 2 MiB of L2): the kernels' compute rate. Compare cpu_time (or
// Gweights_s) A/B within one run; on a loaded machine cpu_time is the steadier.
void BM_QGemvL2(benchmark::State& state) {
  const int i = static_cast<int>(state.range(0));
  const DType t = kTypes[i];
  constexpr int64_t rows = 256, cols = 4096;
  const Tensor w = weights_for(i, rows, cols);
  const std::vector<float> x = activations(cols);
  std::vector<float> y(static_cast<size_t>(rows));
  for (auto _ : state) {
    run(i, w.data, x.data(), y.data(), rows, cols, 1);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * w.nbytes());
  state.counters["Gweights_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * rows * cols / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(label(i));
}
BENCHMARK(BM_QGemvL2)->ArgNames({"dtype"})->DenseRange(0, 12)->Unit(benchmark::kMicrosecond);

// Prefill: n inputs against one 4096 x 4096 weight, both strategies
// (0 = quantized dots, 1 = dequantize + sgemm).
void BM_QMatmul(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n = state.range(1), rows = 4096, cols = 4096;
  const bool dequant = state.range(2) != 0;
  const Tensor w = random_weights(t, rows, cols);
  const std::vector<float> x = activations(n * cols);
  std::vector<float> y(static_cast<size_t>(n * rows));
  for (auto _ : state) {
    if (dequant)
      qmatmul_dequant(t, w.data, x.data(), y.data(), n, rows, cols);
    else
      qmatmul_quantized(t, w.data, x.data(), y.data(), n, rows, cols);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * static_cast<double>(state.iterations()) * n * rows * cols / 1e9,
                                                benchmark::Counter::kIsRate);
  state.SetLabel(std::string(dtype_name(t)) + (dequant ? " dequant+sgemm" : " quantized dots"));
}
BENCHMARK(BM_QMatmul)
    ->ArgNames({"dtype", "n", "dequant"})
    ->ArgsProduct({{1, 2, 8, 10}, {2, 4, 8, 16, 64}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace shrink::kernels
