// Benchmarks of the compressed N:M products (kernels/sparse_nm.h) against the
// dense GEMV on the same logical shape (4096 x 1536, a llama-500m-like FFN
// matrix), streaming over >= 1 GiB of distinct matrices (the decode
// situation: every weight comes from DRAM once per token). Gweights_s counts
// the logical rows x cols weights, so the compressed / dense ratio of it is
// the speed-up decode gets from the format; med_frac is the fraction of the
// read bandwidth the kernel reaches on the bytes it really reads.
//   shrink_bench --benchmark_filter='Nm'
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/bandwidth.h"
#include "kernels/gemv.h"
#include "kernels/sparse_nm.h"
#include "stream.h"

namespace shrink::kernels {
namespace {

constexpr int64_t kRows = 4096, kCols = 1536;

// Deterministic values in [-1, 1) and valid indices (< m) for `count` matrices of shape s.
struct Compressed {
  Tensor values, indices;
};
Compressed random_compressed(const NmShape& s, DType vt, int64_t count) {
  const int64_t nv = count * s.rows * s.values_per_row(), ni = count * s.rows * s.index_words_per_row();
  std::vector<float> f(static_cast<size_t>(nv));
  uint32_t r = 12345;
  for (auto& v : f) r = r * 1664525u + 1013904223u, v = static_cast<float>(r >> 8) * (2.0f / 16777216.0f) - 1.0f;
  Compressed c{Tensor::alloc(vt, {nv}), Tensor::alloc(DType::I32, {ni})};
  convert_from_f32(vt, f.data(), c.values.data, nv);
  const uint32_t valid = s.index_bits() == 2 ? 0xFFFFFFFFu : 0x77777777u;  // 4-bit indices < 8 (4:8)
  for (int64_t i = 0; i < ni; ++i) r = r * 1664525u + 1013904223u, c.indices.ptr<uint32_t>()[i] = r & valid;
  return c;
}

Tensor random_dense(DType t, int64_t rows, int64_t cols) {
  std::vector<float> f(static_cast<size_t>(rows * cols));
  uint32_t s = 12345;
  for (auto& v : f) s = s * 1664525u + 1013904223u, v = static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
  Tensor w = Tensor::alloc(t, {rows, cols});
  convert_from_f32(t, f.data(), w.data, rows * cols);
  return w;
}

// Args: value dtype (0 f32, 1 bf16), pattern (0 dense, 2 = 2:4, 4 = 4:8), threads.
void BM_NmStream(benchmark::State& state) {
  const DType vt = state.range(0) ? DType::BF16 : DType::F32;
  const int n = static_cast<int>(state.range(1)), threads = static_cast<int>(state.range(2));
  const ReadBandwidth read = measure_read_bandwidth_stats(threads);
  std::vector<float> x(static_cast<size_t>(kCols), 0.5f), y(static_cast<size_t>(kRows));
  if (n == 0) {
    const bench::StreamLayout layout(dtype_bytes(vt, kRows * kCols));
    const Tensor w = random_dense(vt, layout.matrices() * kRows, kCols);
    bench::run_stream(state, read, layout, kRows * kCols, [&](int64_t m) {
      gemv_threads(vt, static_cast<const char*>(w.data) + m * layout.mat_bytes, x.data(), y.data(), kRows, kCols,
                   threads);
      benchmark::DoNotOptimize(y.data());
    });
    state.SetLabel(std::string("dense ") + std::string(dtype_name(vt)));
    return;
  }
  const NmShape s{n, 2 * n, kRows, kCols};
  const int64_t vbytes = s.rows * s.values_per_row() * dtype_bytes(vt, 1), ibytes = s.rows * s.index_words_per_row() * 4;
  const bench::StreamLayout layout(vbytes + ibytes);
  const Compressed c = random_compressed(s, vt, layout.matrices());
  bench::run_stream(state, read, layout, kRows * kCols, [&](int64_t m) {
    nm_gemv_threads(s, vt, static_cast<const char*>(c.values.data) + m * vbytes,
                    c.indices.ptr<const uint32_t>() + m * (ibytes / 4), x.data(), y.data(), threads);
    benchmark::DoNotOptimize(y.data());
  });
  state.SetLabel(std::to_string(n) + ":" + std::to_string(2 * n) + " " + std::string(dtype_name(vt)) + " " +
                 nm_gemv_isa(s));
}
BENCHMARK(BM_NmStream)
    ->ArgNames({"bf16", "n", "threads"})
    ->ArgsProduct({{0, 1}, {0, 2, 4}, {1, 2}})
    ->MinTime(2.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Prefill: n tokens against one 2:4 matrix through nm_matmul() (multi-token
// kernel up to its threshold, unpack + sgemm beyond); tokens/s.
void BM_NmMatmul(benchmark::State& state) {
  const DType vt = state.range(0) ? DType::BF16 : DType::F32;
  const int64_t n = state.range(1);
  const NmShape s{2, 4, kRows, kCols};
  const Compressed c = random_compressed(s, vt, 1);
  std::vector<float> x(static_cast<size_t>(n * kCols), 0.5f), y(static_cast<size_t>(n * kRows));
  for (auto _ : state) {
    nm_matmul(s, vt, c.values.data, c.indices.ptr<const uint32_t>(), x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);  // tokens
  state.SetLabel(std::string(dtype_name(vt)));
}
BENCHMARK(BM_NmMatmul)
    ->ArgNames({"bf16", "n"})
    ->ArgsProduct({{0, 1}, {2, 4, 8, 16, 17, 32, 64}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shrink::kernels
