#include "core/cpu.h"

#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace shrink {

namespace {
CpuFeatures detect() {
  CpuFeatures f;
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = f.avx2;  // every AVX2 CPU we target has F16C
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
  f.amd = __builtin_cpu_is("amd");
  if (const char* cap = std::getenv("SHRINK_ISA")) {
    const std::string c = cap;
    if (c == "scalar" || c == "avx2") {
      f.avx512f = f.avx512bw = f.avx512vl = f.avx512_vnni = f.avx512_bf16 = false;
    }
    if (c == "scalar") f.avx2 = f.fma = f.f16c = false;
  }
  return f;
}

uint64_t status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0) return std::stoull(line.substr(n + 1)) * 1024;
  return 0;
}
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string cpu_features_str() {
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512_vnni) return "avx512+vnni";
  if (f.avx512f) return "avx512";
  if (f.avx2 && f.fma) return "avx2";
  return "scalar";
}

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}
int num_threads() { return omp_get_max_threads(); }

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

uint64_t peak_rss_bytes() { return status_kb("VmHWM:"); }
uint64_t current_rss_bytes() { return status_kb("VmRSS:"); }

}  // namespace shrink
