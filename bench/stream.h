// The streaming harness shared by the GEMV benchmarks: run a kernel over many
// distinct matrices (no cache reuse: the decode situation, where every weight
// comes from DRAM once per token) and set the counters against the read
// bandwidth measured just before, at the same thread count:
//   bytes_per_second, bw_frac  mean rate, and its fraction of the best read rate
//   best_GBps, best_frac       best group against the best read block (both
//                              the moments no other process interfered)
//   med_GBps, med_frac         median group against the median read block
//   Gweights_s                 weights per second at the median (bits-independent)
// On a shared host the read rate drifts by +-20% from second to second, so
// best_frac and med_frac are the like-for-like figures; bw_frac is a floor.
#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cpu.h"
#include "kernels/bandwidth.h"

namespace shrink::bench {

// Matrices of mat_bytes cycled in groups of >= 64 MiB over >= total_bytes.
struct StreamLayout {
  int64_t mat_bytes = 0, group = 0, groups = 0;
  StreamLayout(int64_t mat, int64_t total_bytes = int64_t{1} << 30)
      : mat_bytes(mat), group(((int64_t{64} << 20) + mat - 1) / mat),
        groups((total_bytes + group * mat - 1) / (group * mat)) {}
  int64_t matrices() const { return group * groups; }
};

// run_matrix(i) multiplies by matrix i (of layout.matrices()); weights = its rows * cols.
template <class RunMatrix>
void run_stream(benchmark::State& state, const kernels::ReadBandwidth& read, const StreamLayout& layout,
                int64_t weights, RunMatrix&& run_matrix) {
  int64_t g = 0;
  std::vector<double> dt;
  for (auto _ : state) {
    const double t0 = now_seconds();
    for (int64_t i = g * layout.group; i < (g + 1) * layout.group; ++i) {
      run_matrix(i);
      benchmark::ClobberMemory();
    }
    dt.push_back(now_seconds() - t0);
    g = g + 1 == layout.groups ? 0 : g + 1;
  }
  const double bytes = double(layout.group * layout.mat_bytes);
  std::sort(dt.begin(), dt.end());
  const double best = dt.front(), med = dt[dt.size() / 2];
  state.SetBytesProcessed(state.iterations() * layout.group * layout.mat_bytes);
  state.counters["read_GBps"] = read.best / 1e9;
  state.counters["read_med_GBps"] = read.median / 1e9;
  state.counters["bw_frac"] =
      benchmark::Counter(double(state.iterations()) * bytes / read.best, benchmark::Counter::kIsRate);
  state.counters["best_GBps"] = bytes / best / 1e9;
  state.counters["best_frac"] = bytes / best / read.best;
  state.counters["med_GBps"] = bytes / med / 1e9;
  state.counters["med_frac"] = bytes / med / read.median;
  state.counters["Gweights_s"] = double(layout.group) * double(weights) / med / 1e9;
}

}  // namespace shrink::bench
