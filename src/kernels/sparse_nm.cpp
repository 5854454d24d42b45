#include "kernels/sparse_nm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

namespace {

inline float value_at(DType t, const void* v, int64_t i) {
  return t == DType::F32 ? static_cast<const float*>(v)[i] : bf16_to_f32(static_cast<const uint16_t*>(v)[i]);
}

int64_t value_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

bool use_avx512(const NmShape& s) {
  const auto& f = cpu_features();
  return s.half_pattern() && f.avx512f && f.avx512bw && f.avx512vl;
}

// The matrix's rows [r0, r0 + nr) as a shape plus pointers.
struct Slab {
  NmShape s;
  const void* values;
  const uint32_t* idx;
};
Slab slab(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, int64_t r0, int64_t nr) {
  NmShape t = s;
  t.rows = nr;
  return {t, static_cast<const char*>(values) + r0 * s.values_per_row() * value_bytes(vtype),
          idx + r0 * s.index_words_per_row()};
}

// x (ntok tokens of cols) copied to zero-padded rows of nm_padded_cols(s).
std::vector<float> pad_x(const NmShape& s, const float* x, int64_t ntok) {
  const int64_t pc = nm_padded_cols(s);
  std::vector<float> xp(static_cast<size_t>(pc * ntok), 0.0f);
  for (int64_t t = 0; t < ntok; ++t) std::memcpy(xp.data() + t * pc, x + t * s.cols, sizeof(float) * s.cols);
  return xp;
}

// Up to this many tokens nm_matmul runs the multi-token kernel (indices
// unpacked once per 4 tokens); beyond, dense panels + sgemm. The crossover is
// where sgemm's compute rate beats re-reading the compressed rows per 4
// tokens (bench/sparse_nm_bench.cpp, BM_NmMatmul).
constexpr int64_t kTokensMax = 16;

}  // namespace

void check_nm_shape(const NmShape& s) {
  SHRINK_CHECK(s.n > 0 && s.n < s.m && s.m <= 16, "N:M sparsity ", s.n, ":", s.m,
               " is not supported (need 0 < N < M <= 16)");
  SHRINK_CHECK(s.rows > 0 && s.cols > 0, "N:M sparse matrix: bad shape ", s.rows, "x", s.cols);
}

int64_t nm_padded_cols(const NmShape& s) { return s.values_per_row() / 16 * 32; }

void nm_gemv_ref(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* x, float* y) {
  const int64_t vpr = s.values_per_row(), ipr = s.index_words_per_row(), kept = s.groups() * s.n;
  for (int64_t r = 0; r < s.rows; ++r) {
    double acc = 0;
    for (int64_t k = 0; k < kept; ++k) {
      const int64_t c = nm_column(s, idx + r * ipr, k);
      const float v = value_at(vtype, values, r * vpr + k);
      if (c < s.cols) acc += double(v) * x[c];  // padding slots of a narrow last group hold zero
    }
    y[r] = static_cast<float>(acc);
  }
}

const char* nm_gemv_isa(const NmShape& s) { return use_avx512(s) ? "avx512" : "scalar"; }

void nm_gemv_threads(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* x, float* y,
                     int threads) {
  if (s.rows <= 0) return;
  if (!use_avx512(s)) {
    for_row_slabs(s.rows, threads, [&](int64_t r0, int64_t r1) {
      const Slab b = slab(s, vtype, values, idx, r0, r1 - r0);
      nm_gemv_ref(b.s, vtype, b.values, b.idx, x, y + r0);
    });
    return;
  }
  const std::vector<float> xp = pad_x(s, x, 1);
  for_row_slabs(s.rows, threads, [&](int64_t r0, int64_t r1) {
    const Slab b = slab(s, vtype, values, idx, r0, r1 - r0);
    nm_rows_avx512(b.s, vtype, b.values, b.idx, xp.data(), y + r0);
  });
}

void nm_gemv(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* x, float* y) {
  const int64_t bytes = s.rows * (s.values_per_row() * value_bytes(vtype) + 4 * s.index_words_per_row());
  nm_gemv_threads(s, vtype, values, idx, x, y, decode_threads(bytes));
}

void nm_unpack(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, float* out) {
  const int64_t vpr = s.values_per_row(), ipr = s.index_words_per_row(), kept = s.groups() * s.n;
  for (int64_t r = 0; r < s.rows; ++r) {
    float* o = out + r * s.cols;
    std::fill(o, o + s.cols, 0.0f);
    for (int64_t k = 0; k < kept; ++k) {
      const int64_t c = nm_column(s, idx + r * ipr, k);
      const float v = value_at(vtype, values, r * vpr + k);
      if (c < s.cols && v != 0.0f) o[c] = v;
    }
  }
}

void nm_matmul(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* x, float* y,
               int64_t n) {
  if (n <= 0 || s.rows <= 0) return;
  if (n == 1) return nm_gemv(s, vtype, values, idx, x, y);
  if (n <= kTokensMax && use_avx512(s)) {
    const std::vector<float> xp = pad_x(s, x, n);
    const int64_t bytes = s.rows * s.values_per_row() * value_bytes(vtype) * n;
    for_row_slabs(s.rows, decode_threads(bytes), [&](int64_t r0, int64_t r1) {
      const Slab b = slab(s, vtype, values, idx, r0, r1 - r0);
      nm_tokens_avx512(b.s, vtype, b.values, b.idx, xp.data(), n, y + r0, s.rows);
    });
    return;
  }
  panel_sgemm(n, s.rows, s.cols, x, y, [&](int64_t r0, int64_t nr, float* wf) {
    const Slab b = slab(s, vtype, values, idx, r0, nr);
    nm_unpack(b.s, vtype, b.values, b.idx, wf);
  });
}

}  // namespace shrink::kernels
