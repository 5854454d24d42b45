#include "kernels/gemv.h"

#include <dnnl.h>

#include <algorithm>
#include <vector>

#include "core/tensor.h"

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/gemv_simd.h"

namespace shrink::kernels {

namespace {
inline float load_as_f32(DType t, const void* W, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(W)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(W)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(W)[i]);
    default: fail("gemv: unsupported weight type ", dtype_name(t));
  }
}

using GemvFn = void (*)(DType, const void*, const float*, float*, int64_t, int64_t);

GemvFn pick_gemv() {
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl) return gemv_rows_avx512;
  if (f.avx2 && f.fma) return gemv_rows_avx2;
  return gemv_ref;
}
}  // namespace

void gemv_ref(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < cols; ++c) acc += double(load_as_f32(wtype, W, r * cols + c)) * x[c];
    y[r] = static_cast<float>(acc);
  }
}

const char* gemv_isa() {
  const GemvFn f = pick_gemv();
  return f == gemv_rows_avx512 ? "avx512" : f == gemv_rows_avx2 ? "avx2" : "scalar";
}

void gemv(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  static const GemvFn fn = pick_gemv();
  SHRINK_CHECK(wtype == DType::F32 || wtype == DType::F16 || wtype == DType::BF16,
               "gemv: unsupported weight type ", dtype_name(wtype));
  const int64_t esz = dtype_traits(wtype).block_bytes;
  // Rows are split in chunks across threads; each chunk streams its rows once.
  constexpr int64_t kChunk = 16;
  const int64_t nchunks = (rows + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < nchunks; ++ch) {
    const int64_t r0 = ch * kChunk;
    const int64_t nr = std::min(kChunk, rows - r0);
    fn(wtype, static_cast<const char*>(W) + r0 * cols * esz, x, y + r0, nr, cols);
  }
}

void matmul(DType wtype, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols) {
  if (n == 1) return gemv(wtype, W, x, y, rows, cols);
  if (wtype == DType::F32) {
    // Row-major y = x * W^T: M = n, N = rows, K = cols.
    const dnnl_status_t st = dnnl_sgemm('N', 'T', n, rows, cols, 1.0f, x, cols, static_cast<const float*>(W), cols,
                                        0.0f, y, rows);
    SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
    return;
  }
  // 16-bit weights: widen a panel of rows to f32, then GEMM against all n inputs.
  // The conversion is amortised over the n activations; panel sized to stay in L2.
  const int64_t panel = std::max<int64_t>(16, (1 << 18) / std::max<int64_t>(cols, 1));
  std::vector<float> wf(static_cast<size_t>(panel * cols));
  std::vector<float> yp(static_cast<size_t>(panel * n));
  const int64_t esz = dtype_traits(wtype).block_bytes;
  for (int64_t r0 = 0; r0 < rows; r0 += panel) {
    const int64_t nr = std::min(panel, rows - r0);
    convert_to_f32(wtype, static_cast<const char*>(W) + r0 * cols * esz, wf.data(), nr * cols);
    const dnnl_status_t st = dnnl_sgemm('N', 'T', n, nr, cols, 1.0f, x, cols, wf.data(), cols, 0.0f, y + r0, rows);
    SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
  }
}

}  // namespace shrink::kernels
