// How the decode kernels (gemv, qdot, group_gemv, sign_gemv, int8_gemm) split
// a matrix's rows over threads: one contiguous slab per thread, streamed front
// to back (what the hardware prefetchers handle best), slab edges on whole
// multiples of kRowAlign rows so no two threads write the same cache line of y.
// Every row is computed the same way whatever its slab, so results do not
// depend on the thread count. Internal to src/kernels.
#pragma once
#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"

namespace shrink::kernels {

// 16 f32 outputs are one cache line of y.
constexpr int64_t kRowAlign = 16;
// Below this many weight bytes a GEMV runs on the calling thread: waking the
// OpenMP team costs a few microseconds, more than streaming a matrix of this
// size from cache takes (bench/gemv_bench.cpp, BM_GemvSmall).
constexpr int64_t kParallelMinBytes = int64_t{1} << 18;

// How many far-apart row runs ("streams") a decode kernel walks its thread's
// slab in: its "streamed" number (8 on AVX-512, 6 on AVX2) or its "cached"
// number (4). The wider walk keeps more misses in flight, but every stream of
// every thread competes for the same DRAM, and which way it tips depends on
// the CPU:
//  - a team (2 threads): 2 x 8 streams decoded 10-16% slower than 2 x 4 (Zen 5,
//    session 11: llama-500m Q8_0 / Q4_0 / Q4_K at 2 threads, alternated runs);
//  - a thread alone on an Intel Xeon: 8 beat 4 (sessions 3-9);
//  - a thread alone on Zen 5: 4 beat 8 (session 12, llama-500m decode at 1
//    thread, alternated, two series: F32 +6% / +12%, Q8_0 +6% / +3%, Q4_0 +4%,
//    int4g128 +15%, Q4_K even), and a bare read of 8 streams reaches 29 GB/s
//    against 38-42 with 4 or 1.
// So the wide walk is taken only by a thread decoding alone, on a CPU other
// than AMD's, through a slab bigger than L2 (`streamed_min`).
// SHRINK_WIDE_WALK=1|0 forces the choice (to measure it on a new CPU);
// set_wide_walk(0|1) does too, and set_wide_walk(-1) returns to the default
// (tests use it to cover both walks on any CPU).
inline std::atomic<int> g_wide_walk{-1};  // -1: not decided yet
inline void set_wide_walk(int wide) { g_wide_walk.store(wide, std::memory_order_relaxed); }
inline bool wide_walk_pays() {
  int wide = g_wide_walk.load(std::memory_order_relaxed);
  if (wide < 0) {
    const char* e = std::getenv("SHRINK_WIDE_WALK");
    wide = e && *e ? *e != '0' : !cpu_features().amd;
    set_wide_walk(wide);
  }
  return wide != 0;
}
// How far ahead (bytes) the ggml-type kernels (qdot_avx512/avx2.cpp) prefetch
// each of the `streams` rows they walk in step: 2 KiB on the narrow walk (4
// streams), 1 KiB on the wide ones (8 on AVX-512, 6 on AVX2), about the same
// bytes in flight per thread either way. Measured on Zen 5, 2 KiB against 1 KiB:
// with 4 streams llama-500m decoded faster (session 12, alternated: Q4_K +16%
// at 1 thread and +2% at 2, Q8_0 +14% / +12%, Q4_0 even / +5%, AVX2 Q4_K +5% at
// 1 thread); with 8 streams 6% slower (session 11). The f32 and group kernels
// keep 1 KiB: 2 KiB did not move them (F32 -2%, int4g128 -1%, within noise).
constexpr int64_t prefetch_ahead(int streams) { return streams > 4 ? 1024 : 2048; }

inline bool decoding_alone() { return omp_get_num_threads() == 1; }  // outside a parallel region, or a team of 1
inline bool walks_wide() { return decoding_alone() && wide_walk_pays(); }
inline bool streamed_walk(int64_t bytes, int64_t streamed_min) { return bytes >= streamed_min && walks_wide(); }

// Threads for a GEMV over `bytes` of weights: 1 when small or already inside a parallel region.
inline int decode_threads(int64_t bytes) {
  return omp_in_parallel() || bytes < kParallelMinBytes ? 1 : omp_get_max_threads();
}
// Threads for a product big enough to always split (matmuls): 1 inside a parallel region.
inline int team_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

// Runs fn(r0, r1) over contiguous slabs [r0, r1) of rows, one per thread, at
// most `threads` threads (fewer when there are fewer kRowAlign blocks); with
// one thread, fn(0, rows) on the calling thread.
template <typename F>
void for_row_slabs(int64_t rows, int threads, F&& fn) {
  const int64_t blocks = (rows + kRowAlign - 1) / kRowAlign;
  const int nt = static_cast<int>(std::min<int64_t>(threads, blocks));
  if (nt <= 1) return fn(int64_t{0}, rows);
#pragma omp parallel num_threads(nt)
  {
    const int64_t i = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t r0 = blocks * i / team * kRowAlign, r1 = std::min(rows, blocks * (i + 1) / team * kRowAlign);
    if (r1 > r0) fn(r0, r1);
  }
}

// for_row_slabs over several matrices' rows laid end to end (decode's q/k/v
// sharing one fork/join): fn(part, b, e) for rows [b, e) of each part a slab
// covers, so a slab crossing a part boundary runs as one piece per part.
// Part has a `rows` member; part boundaries at multiples of kRowAlign keep
// every piece aligned.
template <typename Part, typename F>
void for_part_slabs(const Part* parts, int n_parts, int threads, F&& fn) {
  int64_t rows = 0;
  for (int i = 0; i < n_parts; ++i) rows += parts[i].rows;
  if (rows <= 0) return;
  for_row_slabs(rows, threads, [&](int64_t r0, int64_t r1) {
    int64_t base = 0;
    for (int i = 0; i < n_parts && base < r1; base += parts[i++].rows) {
      const int64_t b = std::max(r0, base) - base, e = std::min(r1, base + parts[i].rows) - base;
      if (e > b) fn(parts[i], b, e);
    }
  });
}

// y[n x rows] (leading dimension rows) = x[n x cols] * W^T for a W that is
// not f32 in memory: each thread takes its slab of rows and, panel by panel
// (~1 MiB of f32), has widen(r0, nr, buf) write rows [r0, r0 + nr) of W as
// f32 into its own buffer, then runs a single-threaded sgemm of all n inputs
// against it (oneDNN starts no team inside a parallel region). One fork/join
// per call, and the widening runs in parallel too.
template <typename Widen>
void panel_sgemm(int64_t n, int64_t rows, int64_t cols, const float* x, float* y, Widen&& widen) {
  const int64_t panel = std::max<int64_t>(16, (int64_t{1} << 18) / std::max<int64_t>(cols, 1));
  std::atomic<bool> ok = true;
  for_row_slabs(rows, team_threads(), [&](int64_t r_begin, int64_t r_end) {
    std::vector<float> wf(static_cast<size_t>(std::min(panel, r_end - r_begin) * cols));
    for (int64_t r0 = r_begin; r0 < r_end && ok; r0 += panel) {
      const int64_t nr = std::min(panel, r_end - r0);
      widen(r0, nr, wf.data());
      if (dnnl_sgemm('N', 'T', n, nr, cols, 1.0f, x, cols, wf.data(), cols, 0.0f, y + r0, rows) != dnnl_success)
        ok = false;
    }
  });
  SHRINK_CHECK(ok, "oneDNN sgemm failed");
}

}  // namespace shrink::kernels
