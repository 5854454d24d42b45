// Benchmarks of the W8A8 int8 kernels (kernels/int8_gemm.h) against the f32
// kernels on llama-500m shapes (4096x1536, 1536x4096, 32000x1536):
//   BM_Int8VsF32Prefill  n = 128: int8_matmul (oneDNN int8) vs matmul(F32)
//                        (oneDNN sgemm), timed alternately in one loop so both
//                        see the same machine load; counters f32_ms, int8_ms,
//                        speedup (f32 time / int8 time), int8 GOP/s.
//   BM_Int8VsF32Decode   n = 1: int8_gemv_threads vs gemv_threads(F32), same
//                        alternation; weight GB/s of each and speedup.
//   BM_Int8SmallN        where int8_matmul switches from its row kernels to oneDNN.
//   BM_Int8Quantize      per-token activation quantization.
//   shrink_bench --benchmark_filter=Int8
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "kernels/gemv.h"
#include "kernels/int8_gemm.h"

namespace shrink::kernels {
namespace {

constexpr int64_t kShapes[][2] = {{4096, 1536}, {1536, 4096}, {32000, 1536}};

// Deterministic values in [-1, 1).
std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::vector<float> f(static_cast<size_t>(n));
  uint32_t s = seed;
  for (auto& v : f) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
  return f;
}

// An f32 weight and its W8A8 quantization.
struct Weights {
  std::vector<float> f32;
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> row_sum;
  int64_t rows, cols;
  Weights(int64_t r, int64_t c)
      : f32(random_floats(r * c, 12345)), q(static_cast<size_t>(r * c)), scale(static_cast<size_t>(r)),
        row_sum(static_cast<size_t>(r)), rows(r), cols(c) {
    quantize_weight_s8(f32.data(), r, c, q.data(), scale.data(), row_sum.data());
  }
  Int8Rows view() const { return {q.data(), scale.data(), row_sum.data(), rows, cols}; }
};

// Sets the OpenMP (and so oneDNN) thread count for one benchmark.
struct Threads {
  int saved = omp_get_max_threads();
  explicit Threads(int n) { set_num_threads(n); }
  ~Threads() { set_num_threads(saved); }
};

void BM_Int8VsF32Prefill(benchmark::State& state) {
  const int64_t rows = kShapes[state.range(0)][0], cols = kShapes[state.range(0)][1], n = state.range(1);
  const Threads threads(static_cast<int>(state.range(2)));
  const Weights w(rows, cols);
  const std::vector<float> x = random_floats(n * cols, 777);
  std::vector<float> y(static_cast<size_t>(n * rows));
  // Quantization of x is timed with the int8 product (int8_linear): it is
  // part of what a W8A8 layer pays per call.
  int8_linear(w.view(), x.data(), 0.0f, nullptr, y.data(), n);  // warm-up: primitive creation
  matmul(DType::F32, w.f32.data(), x.data(), y.data(), n, rows, cols);
  double t_f32 = 0, t_int8 = 0;
  for (auto _ : state) {
    double t0 = now_seconds();
    matmul(DType::F32, w.f32.data(), x.data(), y.data(), n, rows, cols);
    benchmark::ClobberMemory();
    t_f32 += now_seconds() - t0;
    t0 = now_seconds();
    int8_linear(w.view(), x.data(), 0.0f, nullptr, y.data(), n);
    benchmark::ClobberMemory();
    t_int8 += now_seconds() - t0;
  }
  const double it = static_cast<double>(state.iterations()), ops = 2.0 * n * rows * cols;
  state.counters["f32_ms"] = t_f32 / it * 1e3;
  state.counters["int8_ms"] = t_int8 / it * 1e3;
  state.counters["speedup"] = t_f32 / t_int8;
  state.counters["f32_GFLOPs"] = ops * it / t_f32 / 1e9;
  state.counters["int8_GOPs"] = ops * it / t_int8 / 1e9;
}
BENCHMARK(BM_Int8VsF32Prefill)
    ->ArgNames({"shape", "n", "threads"})
    ->ArgsProduct({{0, 1, 2}, {128}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One matrix reused every iteration (the int8 4096x1536 one, 6 MiB, can stay
// in cache; the f32 one, 24 MiB, mostly cannot): weight bytes/s of each.
void BM_Int8VsF32Decode(benchmark::State& state) {
  const int64_t rows = kShapes[state.range(0)][0], cols = kShapes[state.range(0)][1];
  const int threads = static_cast<int>(state.range(1));
  const Weights w(rows, cols);
  const std::vector<float> x = random_floats(cols, 778);
  std::vector<int8_t> xq(static_cast<size_t>(cols));
  float xs = 0;
  std::vector<float> y(static_cast<size_t>(rows));
  double t_f32 = 0, t_int8 = 0;
  for (auto _ : state) {
    double t0 = now_seconds();
    gemv_threads(DType::F32, w.f32.data(), x.data(), y.data(), rows, cols, threads);
    benchmark::ClobberMemory();
    t_f32 += now_seconds() - t0;
    t0 = now_seconds();
    quantize_rows_s8(x.data(), 1, cols, xq.data(), &xs);
    int8_gemv_threads(w.view(), xq.data(), xs, nullptr, y.data(), threads);
    benchmark::ClobberMemory();
    t_int8 += now_seconds() - t0;
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["f32_GBps"] = 4.0 * rows * cols * it / t_f32 / 1e9;
  state.counters["int8_GBps"] = 1.0 * rows * cols * it / t_int8 / 1e9;
  state.counters["f32_us"] = t_f32 / it * 1e6;
  state.counters["int8_us"] = t_int8 / it * 1e6;
  state.counters["speedup"] = t_f32 / t_int8;
  state.SetLabel(std::string("gemv ") + gemv_isa() + ", int8 " + int8_isa());
}
BENCHMARK(BM_Int8VsF32Decode)
    ->ArgNames({"shape", "threads"})
    ->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Small n: the row kernels (W read once per L2 panel for all n tokens) vs
// oneDNN (brgemm repacks W first); int8_onednn_min_n() sits where they cross.
void BM_Int8SmallN(benchmark::State& state) {
  const bool onednn = state.range(0) != 0;
  const int64_t n = state.range(1);
  const Threads threads(static_cast<int>(state.range(2)));
  const Weights w(4096, 1536);
  std::vector<int8_t> xq(static_cast<size_t>(n * w.cols), 3);
  std::vector<float> xs(static_cast<size_t>(n), 0.01f), y(static_cast<size_t>(n * w.rows));
  for (auto _ : state) {
    if (onednn)
      int8_matmul_onednn(w.view(), xq.data(), xs.data(), nullptr, y.data(), n);
    else
      int8_matmul_rows(w.view(), xq.data(), xs.data(), nullptr, y.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["GOPs"] = benchmark::Counter(2.0 * n * w.rows * w.cols * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.SetLabel(onednn ? "onednn" : std::string("rows ") + int8_isa());
}
BENCHMARK(BM_Int8SmallN)
    ->ArgNames({"onednn", "n", "threads"})
    ->ArgsProduct({{0, 1}, {2, 4, 8, 16}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Int8Quantize(benchmark::State& state) {
  const int64_t n = state.range(0), k = 1536;
  const std::vector<float> x = random_floats(n * k, 779);
  std::vector<int8_t> q(static_cast<size_t>(n * k));
  std::vector<float> s(static_cast<size_t>(n));
  for (auto _ : state) {
    quantize_rows_s8(x.data(), n, k, q.data(), s.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * k * 4);
  state.SetLabel(int8_isa());
}
BENCHMARK(BM_Int8Quantize)->Arg(1)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shrink::kernels
