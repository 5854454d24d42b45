// How fast one core reads DRAM in the access pattern of a decode kernel that
// walks K far-apart streams, B cache lines of one stream before moving to the
// next, with a software prefetch `pf` bytes ahead of each line (0: none).
// The measurement behind the Q4_K step walk of the repacked GEMV
// (docs/quantization.md, "The repacked layout revisited"): 36-line bursts (a
// Q4_K tile) read slower than bursts of 1-9 lines. All variants run in one
// process, in turn, so the host's drift falls on all of them alike.
//   build/bench/burst_probe [ROUNDS=2]
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

volatile unsigned long long g_sink;  // keeps the loads observable
constexpr size_t kBytes = size_t{1} << 30;

template <int K>
__attribute__((target("avx512f"))) void walk(const char* p, size_t n, int lines, int pf) {
  const size_t part = n / K / (64 * lines) * (64 * lines);
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < part; i += 64 * lines)
    for (int s = 0; s < K; ++s)
      for (int b = 0; b < lines; ++b) {
        const char* q = p + s * part + i + 64 * b;
        if (pf) _mm_prefetch(q + pf, _MM_HINT_T0);
        acc = _mm512_xor_si512(acc, _mm512_loadu_si512(q));
      }
  g_sink = _mm512_reduce_or_epi64(acc);
}

template <int K>
double gbps(const char* p, int lines, int pf) {
  const double t = now();
  walk<K>(p, kBytes, lines, pf);
  return kBytes / (now() - t) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (!__builtin_cpu_supports("avx512f")) {
    std::fprintf(stderr, "burst_probe: needs AVX-512\n");
    return 1;
  }
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 2;
  char* p = static_cast<char*>(std::aligned_alloc(4096, kBytes));
  if (!p) {
    std::fprintf(stderr, "burst_probe: cannot allocate 1 GiB\n");
    return 1;
  }
  for (size_t i = 0; i < kBytes; i += 8) *reinterpret_cast<unsigned long long*>(p + i) = i;
  std::printf("GB/s read by one thread: K streams, B lines per visit, prefetch pf bytes ahead\n");
  for (int r = 0; r < rounds; ++r)
    for (int lines : {1, 4, 9, 36})
      for (int pf : {0, 1024, 4096})
        std::printf("B=%2d pf=%4d  K1 %5.1f K4 %5.1f K8 %5.1f\n", lines, pf, gbps<1>(p, lines, pf),
                    gbps<4>(p, lines, pf), gbps<8>(p, lines, pf));
  std::free(p);
}
