// CPU features (for run-time SIMD dispatch), thread control, timing and
// memory figures shared by every module.
#pragma once
#include <cstdint>
#include <string>

namespace shrink {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512_vnni = false, avx512_bf16 = false;
  bool amd = false;  // an AMD CPU: sets how many row streams a decode thread walks (kernels/row_slabs.h)
};
// Detected once; SHRINK_ISA=scalar|avx2|avx512 caps it (to test fallbacks on this machine).
const CpuFeatures& cpu_features();
std::string cpu_features_str();

void set_num_threads(int n);  // OpenMP and oneDNN
int num_threads();

double now_seconds();          // monotonic
uint64_t peak_rss_bytes();     // VmHWM of this process
uint64_t current_rss_bytes();  // VmRSS

}  // namespace shrink
