#include "kernels/gemv.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/tensor.h"

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/gemv_simd.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

// Widening conversions to f32, defined beside the row kernels in
// gemv_avx512.cpp / gemv_avx2.cpp (same target attributes, same gates).
void widen_avx512(DType wtype, const void* src, float* dst, int64_t n);
void widen_avx2(DType wtype, const void* src, float* dst, int64_t n);

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

// The gates list exactly the extensions each path's target attribute enables:
// avx512 = F (FMA, vcvtph2ps) + BW/VL (masked 16-bit tail loads); it uses no
// avx512bf16 instructions. avx2 = AVX2 + FMA + F16C (vcvtph2ps on ymm).
GemvFn pick_gemv() {
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl) return gemv_rows_avx512;
  if (f.avx2 && f.fma && f.f16c) return gemv_rows_avx2;
  return gemv_ref;
}

using WidenFn = void (*)(DType, const void*, float*, int64_t);

WidenFn pick_widen() {
  const GemvFn g = pick_gemv();
  return g == gemv_rows_avx512 ? widen_avx512 : g == gemv_rows_avx2 ? widen_avx2 : convert_to_f32;
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

void gemv_threads(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols, int threads) {
  static const GemvFn fn = pick_gemv();
  SHRINK_CHECK(wtype == DType::F32 || wtype == DType::F16 || wtype == DType::BF16,
               "gemv: unsupported weight type ", dtype_name(wtype));
  if (rows <= 0) return;
  const int64_t esz = dtype_traits(wtype).block_bytes;
  // One slab per thread (row_slabs.h), the row kernel called once on it.
  for_row_slabs(rows, threads, [&](int64_t r0, int64_t r1) {
    fn(wtype, static_cast<const char*>(W) + r0 * cols * esz, x, y + r0, r1 - r0, cols);
  });
}

void gemv(DType wtype, const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  const int64_t bytes = rows * cols * (wtype == DType::F32 ? 4 : 2);
  gemv_threads(wtype, W, x, y, rows, cols, decode_threads(bytes));
}

void widen_to_f32(DType wtype, const void* src, float* dst, int64_t n) {
  static const WidenFn fn = pick_widen();
  SHRINK_CHECK(wtype == DType::F32 || wtype == DType::F16 || wtype == DType::BF16,
               "widen_to_f32: unsupported type ", dtype_name(wtype));
  fn(wtype, src, dst, n);
}

void matmul(DType wtype, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols) {
  if (n == 1) return gemv(wtype, W, x, y, rows, cols);
  if (n <= 0 || rows <= 0) return;
  if (wtype == DType::F32) {
    // Row-major y = x * W^T: M = n, N = rows, K = cols.
    const dnnl_status_t st = dnnl_sgemm('N', 'T', n, rows, cols, 1.0f, x, cols, static_cast<const float*>(W), cols,
                                        0.0f, y, rows);
    SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
    return;
  }
  SHRINK_CHECK(wtype == DType::F16 || wtype == DType::BF16, "matmul: unsupported weight type ", dtype_name(wtype));
  // 16-bit weights: widened (SIMD) panel by panel, each thread on its slab.
  const int64_t esz = dtype_traits(wtype).block_bytes;
  panel_sgemm(n, rows, cols, x, y, [&](int64_t r0, int64_t nr, float* wf) {
    widen_to_f32(wtype, static_cast<const char*>(W) + r0 * cols * esz, wf, nr * cols);
  });
}

void matmul_strided(const float* x, int64_t ldx, const float* W, int64_t ldw, float* y, int64_t n, int64_t rows,
                    int64_t cols) {
  const dnnl_status_t st = dnnl_sgemm('N', 'T', n, rows, cols, 1.0f, x, ldx, W, ldw, 0.0f, y, rows);
  SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
}

}  // namespace shrink::kernels
