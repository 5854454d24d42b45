// Measures this machine's streaming DRAM read bandwidth, the ceiling for
// bandwidth-bound decode: `shrink bench` and the gemv benchmarks report
// achieved weight bytes/s as a fraction of it.
#pragma once

namespace shrink::kernels {

// Bytes per second read by `threads` OpenMP threads (<= 0: the current
// OpenMP default) streaming through a 1 GiB buffer (far larger than any
// cache) with the widest SIMD loads this CPU supports, each thread reading a
// contiguous share of every 64 MiB block as 1, 4, 8 or 16 parallel streams.
// The best block over 8 passes: the machine's capability even when other
// processes take some of the time. Takes ~1 s; allocates 1 GiB while running.
double measure_read_bandwidth(int threads);

// The same measurement with its spread: `best` is what measure_read_bandwidth
// returns; `median` is the median 64 MiB block of the best read pattern, for
// comparing with a median of other streaming work on a machine whose
// bandwidth drifts (other tenants of the host).
struct ReadBandwidth {
  double best = 0, median = 0;  // bytes per second
};
ReadBandwidth measure_read_bandwidth_stats(int threads);

}  // namespace shrink::kernels
