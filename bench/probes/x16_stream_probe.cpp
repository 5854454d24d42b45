// The repacked (x16) and ggml-layout Q4_0 / Q4_K GEMVs on one core, over one
// matrix reused (cached) and over distinct matrices cycled through 1 GiB
// (streamed from DRAM), as GB/s of weights, all in one process so the host's
// drift falls on both layouts alike (docs/quantization.md, "The repacked
// layout revisited"). The buffer holds arbitrary bytes, not a quantized
// model: only the speed means anything.
//   build/bench/x16_stream_probe
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/qdot.h"
#include "kernels/repack_x16.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

constexpr size_t kBytes = size_t{1} << 30;

// GB/s of `mat_bytes` matrices: `reps` calls on the first one, then one call on each of the buffer's.
template <class Gemv>
void rates(const char* p, int64_t mat_bytes, Gemv gemv, double& cached, double& streamed) {
  const int reps = static_cast<int>(2e8 / mat_bytes) + 1;
  double t = now();
  for (int r = 0; r < reps; ++r) gemv(p);
  cached = double(reps) * mat_bytes / (now() - t) / 1e9;
  const int64_t n = static_cast<int64_t>(kBytes) / mat_bytes;
  t = now();
  for (int64_t m = 0; m < n; ++m) gemv(p + m * mat_bytes);
  streamed = double(n) * mat_bytes / (now() - t) / 1e9;
}

}  // namespace

int main() {
  using namespace shrink;
  if (!kernels::x16_available()) {
    std::fprintf(stderr, "x16_stream_probe: the repacked kernels need AVX-512 VNNI\n");
    return 1;
  }
  char* p = static_cast<char*>(std::aligned_alloc(4096, kBytes));
  if (!p) {
    std::fprintf(stderr, "x16_stream_probe: cannot allocate 1 GiB\n");
    return 1;
  }
  for (size_t i = 0; i < kBytes; i += 8) *reinterpret_cast<uint64_t*>(p + i) = i * 0x9E3779B97F4A7C15ull;
  const int64_t cols = 4096;
  std::vector<float> x(cols, 0.5f), y(4096);
  for (DType t : {DType::Q4_0, DType::Q4_K})
    for (int64_t rows : {256, 1024, 4096}) {
      double xc, xs, gc, gs;
      rates(p, kernels::x16_bytes(t, rows, cols), [&](const char* w) {
        kernels::x16_gemv_threads(t, w, x.data(), y.data(), rows, cols, 1);
      }, xc, xs);
      rates(p, rows * dtype_bytes(t, cols), [&](const char* w) {
        kernels::qgemv_threads(t, w, x.data(), y.data(), rows, cols, 1);
      }, gc, gs);
      std::printf("%s rows %5lld  x16 cached %5.1f stream %5.1f | ggml cached %5.1f stream %5.1f GB/s\n",
                  std::string(dtype_name(t)).c_str(), static_cast<long long>(rows), xc, xs, gc, gs);
    }
  std::free(p);
}
