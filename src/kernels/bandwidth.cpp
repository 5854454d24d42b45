// Streaming-read bandwidth probe (see bandwidth.h). The read loops are
// dispatched like gemv, so the probe measures the same kind of loads the
// decode kernels issue rather than a narrower scalar loop.
#include "kernels/bandwidth.h"

// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever an intrinsic using one is inlined
// (GCC PR 105593, fixed in later releases).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"

namespace shrink::kernels {

namespace {

constexpr size_t kBufferBytes = size_t{1} << 30;  // >> the ~16 MiB of effective cache
// Timed in blocks, best block wins: on a shared 2-core machine a whole-buffer
// pass is rarely free of other processes, a 64 MiB block (~5 ms) often is.
// Blocks are visited in order, so none is still cached when read again.
constexpr size_t kBlockBytes = size_t{64} << 20;
constexpr int kBlocks = static_cast<int>(kBufferBytes / kBlockBytes);
constexpr int kPasses = 8;

// The buffer is read as K equal parts walked in step: K far-apart sequential
// streams. One core reaches ~16 GB/s with 4-16 streams against ~11 GB/s with
// one (more misses in flight), and the gemv kernels read several streams, so
// a single-stream probe would understate the ceiling they are measured
// against. Each pass uses one K; the best of all of them is reported.
constexpr int kStreamCounts[] = {1, 4, 8, 16};
// Software prefetch distance per stream (helps one core keep enough misses in flight).
constexpr size_t kPrefetchBytes = 1024;

// Each reader folds every loaded byte into its result so the loads cannot be
// removed. n must be a multiple of 64 * K.
template <int K>
__attribute__((target("avx512f"))) uint64_t read_avx512(const char* p, size_t n) {
  const size_t part = n / K;
  __m512i acc[K];
  for (int s = 0; s < K; ++s) acc[s] = _mm512_setzero_si512();
  for (size_t i = 0; i < part; i += 64)
    for (int s = 0; s < K; ++s) {
      _mm_prefetch(p + s * part + i + kPrefetchBytes, _MM_HINT_T0);
      acc[s] = _mm512_xor_si512(acc[s], _mm512_load_si512(p + s * part + i));
    }
  for (int s = 1; s < K; ++s) acc[0] = _mm512_xor_si512(acc[0], acc[s]);
  return static_cast<uint64_t>(_mm512_reduce_or_epi64(acc[0]));
}

template <int K>
__attribute__((target("avx2"))) uint64_t read_avx2(const char* p, size_t n) {
  const size_t part = n / K;
  __m256i acc[K];
  for (int s = 0; s < K; ++s) acc[s] = _mm256_setzero_si256();
  for (size_t i = 0; i < part; i += 64)
    for (int s = 0; s < K; ++s) {
      const char* q = p + s * part + i;
      _mm_prefetch(q + kPrefetchBytes, _MM_HINT_T0);
      acc[s] = _mm256_xor_si256(acc[s], _mm256_load_si256(reinterpret_cast<const __m256i*>(q)));
      acc[s] = _mm256_xor_si256(acc[s], _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 32)));
    }
  for (int s = 1; s < K; ++s) acc[0] = _mm256_xor_si256(acc[0], acc[s]);
  return static_cast<uint64_t>(_mm256_extract_epi64(acc[0], 0) | _mm256_extract_epi64(acc[0], 1) |
                               _mm256_extract_epi64(acc[0], 2) | _mm256_extract_epi64(acc[0], 3));
}

template <int K>
uint64_t read_scalar(const char* p, size_t n) {
  const size_t part = n / K;
  uint64_t acc[K] = {};
  for (size_t i = 0; i < part; i += 64)
    for (int s = 0; s < K; ++s) {
      const auto* q = reinterpret_cast<const uint64_t*>(p + s * part + i);
      acc[s] ^= q[0] ^ q[1] ^ q[2] ^ q[3] ^ q[4] ^ q[5] ^ q[6] ^ q[7];
    }
  uint64_t r = 0;
  for (uint64_t a : acc) r ^= a;
  return r;
}

using ReadFn = uint64_t (*)(const char*, size_t);

template <int K>
ReadFn pick_reader_k() {
  const auto& f = cpu_features();
  if (f.avx512f) return read_avx512<K>;
  if (f.avx2) return read_avx2<K>;
  return read_scalar<K>;
}

ReadFn pick_reader(int k) {
  switch (k) {
    case 1: return pick_reader_k<1>();
    case 4: return pick_reader_k<4>();
    case 8: return pick_reader_k<8>();
    default: return pick_reader_k<16>();
  }
}

// Keeps the readers' results observable, so their loads are not optimised away.
volatile uint64_t g_sink;

// Thread t's share of [0, bytes), in whole 4 KiB pages: shares never share a
// line, and every share is a multiple of 64 * K bytes for each K used.
void slab(size_t bytes, int t, int nt, size_t& begin, size_t& end) {
  const size_t pages = bytes / 4096;
  begin = pages * static_cast<size_t>(t) / static_cast<size_t>(nt) * 4096;
  end = pages * static_cast<size_t>(t + 1) / static_cast<size_t>(nt) * 4096;
}

}  // namespace

double measure_read_bandwidth(int threads) { return measure_read_bandwidth_stats(threads).best; }

ReadBandwidth measure_read_bandwidth_stats(int threads) {
  const int nt = threads > 0 ? threads : omp_get_max_threads();
  std::unique_ptr<char, decltype(&std::free)> buf(static_cast<char*>(std::aligned_alloc(4096, kBufferBytes)),
                                                  &std::free);
  SHRINK_CHECK(buf, "measure_read_bandwidth: cannot allocate ", kBufferBytes, " bytes");
  char* p = buf.get();
  ReadFn readers[std::size(kStreamCounts)];
  for (size_t i = 0; i < std::size(kStreamCounts); ++i) readers[i] = pick_reader(kStreamCounts[i]);
  constexpr int kSteps = kPasses * kBlocks;
  std::vector<double> stamp(kSteps + 1);
  uint64_t sink = 0;
#pragma omp parallel num_threads(nt) reduction(^ : sink)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    // Each block is written by the threads that will read it (first touch),
    // and non-zero so the pages are real memory rather than the zero page.
    for (int b = 0; b < kBlocks; ++b) {
      size_t lo, hi;
      slab(kBlockBytes, t, n, lo, hi);
      std::memset(p + b * kBlockBytes + lo, 0x5a, hi - lo);
    }
#pragma omp barrier
#pragma omp master
    stamp[0] = now_seconds();
    for (int k = 0; k < kSteps; ++k) {
      size_t lo, hi;
      slab(kBlockBytes, t, n, lo, hi);
      const ReadFn read = readers[(k / kBlocks) % std::size(kStreamCounts)];
      sink ^= read(p + (k % kBlocks) * kBlockBytes + lo, hi - lo);
#pragma omp barrier
#pragma omp master
      stamp[k + 1] = now_seconds();
    }
  }
  g_sink = sink;
  ReadBandwidth r;
  for (size_t pattern = 0; pattern < std::size(kStreamCounts); ++pattern) {
    std::vector<double> rates;
    for (int k = 0; k < kSteps; ++k)
      if ((k / kBlocks) % std::size(kStreamCounts) == pattern)
        rates.push_back(static_cast<double>(kBlockBytes) / (stamp[k + 1] - stamp[k]));
    std::sort(rates.begin(), rates.end());
    r.best = std::max(r.best, rates.back());
    r.median = std::max(r.median, rates[rates.size() / 2]);
  }
  return r;
}

}  // namespace shrink::kernels
