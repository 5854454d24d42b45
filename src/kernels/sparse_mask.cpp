#include "kernels/sparse_mask.h"

#include <algorithm>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

namespace {

bool use_avx512() { return cpu_features().avx512f; }

// Row r's values (f32 products in double, the reference's order: column order).
double row_dot_ref(const MaskMatrix& m, int64_t r, const float* x) {
  const int64_t ng = m.groups();
  const float* v = m.values.data() + m.row_start[r];
  double acc = 0;
  for (int64_t g = 0; g < ng; ++g) {
    const uint32_t mask = m.masks[r * ng + g];
    for (int j = 0; j < 16; ++j)
      if (mask >> j & 1) acc += double(*v++) * x[16 * g + j];
  }
  return acc;
}

}  // namespace

MaskMatrix mask_pack(const float* w, int64_t rows, int64_t cols) {
  SHRINK_CHECK(rows > 0 && cols > 0, "bitmask sparse matrix: bad shape ", rows, "x", cols);
  MaskMatrix m;
  m.rows = rows, m.cols = cols;
  const int64_t ng = m.groups();
  m.masks.assign(static_cast<size_t>(rows * ng), 0);
  m.row_start.reserve(static_cast<size_t>(rows + 1));
  for (int64_t r = 0; r < rows; ++r) {
    m.row_start.push_back(int64_t(m.values.size()));
    for (int64_t c = 0; c < cols; ++c) {
      const float v = w[r * cols + c];
      if (v == 0.0f) continue;
      m.masks[r * ng + c / 16] |= uint16_t(1u << (c % 16));
      m.values.push_back(v);
    }
  }
  m.row_start.push_back(int64_t(m.values.size()));
  return m;
}

void mask_unpack_rows_ref(const MaskMatrix& m, int64_t r0, int64_t nr, float* out) {
  const int64_t ng = m.groups();
  std::fill(out, out + nr * m.cols, 0.0f);
  for (int64_t r = r0; r < r0 + nr; ++r) {
    const float* v = m.values.data() + m.row_start[r];
    float* o = out + (r - r0) * m.cols;
    for (int64_t g = 0; g < ng; ++g)
      for (int j = 0; j < 16; ++j)
        if (m.masks[r * ng + g] >> j & 1) o[16 * g + j] = *v++;
  }
}

void mask_unpack_rows(const MaskMatrix& m, int64_t r0, int64_t nr, float* out) {
  if (use_avx512()) return mask_unpack_rows_avx512(m, r0, nr, out);
  mask_unpack_rows_ref(m, r0, nr, out);
}

void mask_unpack(const MaskMatrix& m, float* out) { mask_unpack_rows(m, 0, m.rows, out); }

void mask_gemv_ref(const MaskMatrix& m, const float* x, float* y) {
  for (int64_t r = 0; r < m.rows; ++r) y[r] = static_cast<float>(row_dot_ref(m, r, x));
}

const char* mask_gemv_isa() { return use_avx512() ? "avx512" : "scalar"; }

void mask_gemv_threads(const MaskMatrix& m, const float* x, float* y, int threads) {
  if (m.rows <= 0) return;
  const bool simd = use_avx512();
  for_row_slabs(m.rows, threads, [&](int64_t r0, int64_t r1) {
    if (simd) return mask_rows_avx512(m, r0, r1, x, y + r0);
    for (int64_t r = r0; r < r1; ++r) y[r] = static_cast<float>(row_dot_ref(m, r, x));
  });
}

void mask_gemv(const MaskMatrix& m, const float* x, float* y) {
  mask_gemv_threads(m, x, y, decode_threads(m.bytes()));
}

}  // namespace shrink::kernels

namespace shrink::kernels {

void mask_matmul(const MaskMatrix& m, const float* x, float* y, int64_t n) {
  if (n <= 0 || m.rows <= 0) return;
  if (n == 1) return mask_gemv(m, x, y);
  panel_sgemm(n, m.rows, m.cols, x, y, [&](int64_t r0, int64_t nr, float* wf) { mask_unpack_rows(m, r0, nr, wf); });
}

}  // namespace shrink::kernels
