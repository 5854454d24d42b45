// Benchmarks of the packed-code group kernels (kernels/group_gemv.h) beside
// f32 gemv and ggml Q4_0 qgemv on the same 4096 x 4096 shape:
//   BM_GroupGemvStream  decode from DRAM: >= 512 MiB of distinct matrices,
//                       1 and 2 threads; weight GB/s (codes + f32 scales and
//                       zeros as held in memory) and the fraction of
//                       measure_read_bandwidth at the same thread count.
//   BM_GroupGemvCached  one 1024 x 4096 matrix in L2: the compute ceiling.
//   BM_GroupMatmul      prefill: packed-code kernel vs dequantize + sgemm by n
//                       (where they cross is group_matmul_dequant_min_n).
//   shrink_bench --benchmark_filter='Group'
// The machine is shared: repeat and compare medians (med_frac).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/tensor.h"
#include "kernels/bandwidth.h"
#include "stream.h"
#include "kernels/gemv.h"
#include "kernels/group_gemv.h"
#include "kernels/qdot.h"

namespace shrink::kernels {
namespace {

constexpr int64_t kRows = 4096, kCols = 4096;

// A weight format under test: f32 / Q4_0 (dense kernels) or a group format.
struct Format {
  const char* name;
  int bits;           // 0: not a group format
  int64_t group;      // values per group, 0 = per channel
  bool asym, codebook;
  DType dense = DType::F32;
  bool exact = false;  // f32 activations (else int8 where a q8 kernel exists)
};
const Format kFormats[] = {{"f32", 0, 0, false, false, DType::F32},    {"q4_0", 0, 0, false, false, DType::Q4_0},
                           {"int4g128", 4, 128, true, false},           {"int4g32", 4, 32, true, false},
                           {"int4g128sym", 4, 128, false, false},       {"int8ch", 8, 0, true, false},
                           {"int3g64", 3, 64, true, false},    {"nf4g64", 4, 64, false, true},
                           {"int2g64", 2, 64, true, false},
                           {"int4g128 exact", 4, 128, true, false, DType::F32, true}};

uint64_t next(uint64_t& s) { return s = s * 6364136223846793005ull + 1442695040888963407ull; }

// `count` matrices of one format stored back to back, and a view of each.
struct Matrices {
  std::vector<uint32_t> packed;
  std::vector<float> scale, zero, levels;
  Tensor dense;
  int64_t mat_bytes = 0;
  GroupQuantView view(const Format& f, int64_t i) const {
    GroupQuantView v;
    v.bits = f.bits, v.rows = kRows, v.cols = kCols;
    v.group_len = f.group ? f.group : kCols;
    v.exact = f.exact;
    const int64_t words = kRows * v.words_per_row(), params = kRows * v.n_groups();
    v.packed = packed.data() + i * words;
    v.scale = scale.data() + i * params;
    v.zero = f.codebook ? nullptr : zero.data() + i * params;
    v.levels = f.codebook ? levels.data() : nullptr;
    return v;
  }
};

Matrices make(const Format& f, int64_t count) {
  Matrices m;
  uint64_t s = 0x9E3779B97F4A7C15ull;
  if (!f.bits) {
    m.dense = Tensor::alloc(f.dense, {count * kRows, kCols});
    auto* p = static_cast<uint8_t*>(m.dense.data);
    for (int64_t i = 0; i + 8 <= m.dense.nbytes(); i += 8) next(s), std::memcpy(p + i, &s, 8);
    if (f.dense == DType::F32)
      for (int64_t i = 0; i < m.dense.numel(); ++i) m.dense.f32()[i] = float(p[4 * i] & 63) / 32 - 1;
    else  // Q4_0: an ordinary f16 scale in every 18-byte block
      for (int64_t b = 0; b < m.dense.nbytes() / 18; ++b) {
        const uint16_t h = f32_to_f16(0.01f);
        std::memcpy(p + b * 18, &h, 2);
      }
    m.mat_bytes = dtype_bytes(f.dense, kRows * kCols);
    return m;
  }
  Matrices probe;
  const GroupQuantView v0 = probe.view(f, 0);
  const int64_t words = kRows * v0.words_per_row(), params = kRows * v0.n_groups();
  m.packed.resize(size_t(count * words));
  for (auto& w : m.packed) w = uint32_t(next(s) >> 32);
  m.scale.assign(size_t(count * params), 0.01f);
  m.zero.assign(size_t(count * params), float(1 << (f.bits - 1)));
  for (int i = 0; i < 16; ++i) m.levels.push_back(float(i - 8) / 8);
  m.mat_bytes = words * 4 + params * 4 * (f.codebook ? 1 : 2);
  return m;
}

std::vector<float> activations(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  return x;
}

void run(const Format& f, const Matrices& m, int64_t i, const float* x, float* y, int threads) {
  if (f.bits) return group_gemv_threads(m.view(f, i), x, y, threads);
  const char* w = static_cast<const char*>(m.dense.data) + i * m.mat_bytes;
  if (f.dense == DType::F32) return gemv_threads(f.dense, w, x, y, kRows, kCols, threads);
  qgemv_threads(f.dense, w, x, y, kRows, kCols, threads);
}

std::string label(const Format& f) {
  if (!f.bits) return std::string(f.name) + " " + (f.dense == DType::F32 ? gemv_isa() : qdot_isa());
  const Matrices probe = make(f, 0);  // no matrices, but the codebook when there is one
  return std::string(f.name) + " " + group_gemv_path(probe.view(f, 0));
}

// As BM_QGemvStream (qdot_bench.cpp): groups of >= 64 MiB cycled over >= 512 MiB.
void BM_GroupGemvStream(benchmark::State& state) {
  const Format& f = kFormats[state.range(0)];
  const int threads = static_cast<int>(state.range(1));
  const ReadBandwidth read = measure_read_bandwidth_stats(threads);
  const bench::StreamLayout layout(make(f, 0).mat_bytes, int64_t{512} << 20);
  const Matrices m = make(f, layout.matrices());
  const std::vector<float> x = activations(kCols);
  std::vector<float> y(static_cast<size_t>(kRows));
  bench::run_stream(state, read, layout, kRows * kCols, [&](int64_t i) {
    run(f, m, i, x.data(), y.data(), threads);
    benchmark::DoNotOptimize(y.data());
  });
  state.SetLabel(label(f));
}
BENCHMARK(BM_GroupGemvStream)
    ->ArgNames({"fmt", "threads"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2}})
    ->MinTime(1.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_GroupGemvCached(benchmark::State& state) {
  const Format& f = kFormats[state.range(0)];
  const Matrices m = make(f, 1);
  const std::vector<float> x = activations(kCols);
  std::vector<float> y(static_cast<size_t>(kRows));
  for (auto _ : state) {  // the first 1024 rows only: they stay in L2
    if (f.bits) {
      GroupQuantView v = m.view(f, 0);
      v.rows = 1024;
      group_gemv_threads(v, x.data(), y.data(), 1);
    } else if (f.dense == DType::F32) {
      gemv_threads(f.dense, m.dense.data, x.data(), y.data(), 1024, kCols, 1);
    } else {
      qgemv_threads(f.dense, m.dense.data, x.data(), y.data(), 1024, kCols, 1);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["Gweights_s"] =
      benchmark::Counter(double(state.iterations()) * 1024 * kCols / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(label(f));
}
BENCHMARK(BM_GroupGemvCached)->DenseRange(0, 9)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_GroupMatmul(benchmark::State& state) {
  const Format& f = kFormats[state.range(0)];
  const int64_t n = state.range(1);
  const int how = static_cast<int>(state.range(2));  // 0 packed codes, f32 x; 1 dequant + sgemm; 2 packed codes, int8 x
  const bool dequant = how == 1;
  const Matrices m = make(f, 1);
  const std::vector<float> x = activations(n * kCols);
  std::vector<float> y(static_cast<size_t>(n * kRows));
  for (auto _ : state) {
    if (dequant)
      group_matmul_dequant(m.view(f, 0), x.data(), y.data(), n);
    else {
      GroupQuantView v = m.view(f, 0);
      v.exact = how == 0;
      group_matmul_codes(v, x.data(), y.data(), n);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * double(state.iterations()) * n * kRows * kCols / 1e9,
                                                benchmark::Counter::kIsRate);
  const char* kind = how == 1 ? " dequant+sgemm" : how == 0 ? " packed codes, f32 x" : " packed codes, int8 x";
  state.SetLabel(std::string(f.name) + kind);
}
BENCHMARK(BM_GroupMatmul)
    ->ArgNames({"fmt", "n", "dequant"})
    ->ArgsProduct({{2, 5}, {2, 4, 8, 16, 32}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace shrink::kernels
