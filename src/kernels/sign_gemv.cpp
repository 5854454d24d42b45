#include "kernels/sign_gemv.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

namespace {

using RowsFn = void (*)(SignCode, const uint64_t*, const float*, float*, int64_t, int64_t);
using UnpackFn = void (*)(SignCode, const uint64_t*, float*, int64_t, int64_t);

// The AVX-512 path needs F (masked adds), BW (16-bit mask loads) and VL; the
// AVX2 path only AVX2 (vpsllvd, vblendvps, vmaskmovps).
RowsFn pick_rows() {
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl) return sign_rows_avx512;
  if (f.avx2) return sign_rows_avx2;
  return sign_gemv_ref;
}

using TokensFn = void (*)(SignCode, const uint64_t*, const float*, int64_t, float*, int64_t, int64_t, int64_t);

// Without AVX-512 the multi-token product is the row kernel once per token.
void tokens_by_rows(SignCode code, const uint64_t* S, const float* x, int64_t n, float* y, int64_t ldy, int64_t rows,
                    int64_t cols) {
  static const RowsFn fn = pick_rows();
  for (int64_t t = 0; t < n; ++t) fn(code, S, x + t * cols, y + t * ldy, rows, cols);
}

TokensFn pick_tokens() { return pick_rows() == sign_rows_avx512 ? sign_tokens_avx512 : tokens_by_rows; }

UnpackFn pick_unpack() {
  const RowsFn r = pick_rows();
  return r == sign_rows_avx512 ? sign_unpack_avx512 : r == sign_rows_avx2 ? sign_unpack_avx2 : sign_unpack_ref;
}

// Below this many weights a GEMV runs on the calling thread: it takes a few
// microseconds at most, about what waking the OpenMP team costs.
constexpr int64_t kParallelMinWeights = int64_t{1} << 18;
// Up to this many tokens sign_matmul uses the multi-token kernel (no
// unpacking); beyond, the unpacked panel is reused by all tokens in an sgemm.
// Measured on one thread, 4096 x 1536 (bench/sign_gemv_bench.cpp,
// BM_SignTokens vs BM_SignMatmul; shared, loaded host): AVX-512 onebit
// ~6k tokens/s at any n, level with sgemm up to n = 256; ternary (two masked
// adds per 16 weights) ~3.3k tokens/s, sgemm ahead from n ~ 32. The per-token
// GEMV loop (AVX2, scalar) loses to sgemm sooner.
int64_t batch_max_tokens(SignCode code) {
  if (pick_rows() != sign_rows_avx512) return 8;
  return code == SignCode::Binary ? 128 : 16;
}

inline bool bit(const uint64_t* w, int64_t c) { return (w[c / 64] >> (c % 64)) & 1; }

// S[r, c] of row words w (row-relative).
inline int sign_at(SignCode code, const uint64_t* w, int64_t c) {
  if (code == SignCode::Binary) return bit(w, c) ? 1 : -1;
  const uint64_t pos = w[2 * (c / 64)], neg = w[2 * (c / 64) + 1];
  return int((pos >> (c % 64)) & 1) - int((neg >> (c % 64)) & 1);
}

}  // namespace

void sign_gemv_ref(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols) {
  const int64_t rw = sign_row_words(code, cols);
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < cols; ++c) acc += sign_at(code, S + r * rw, c) * double(x[c]);
    y[r] = static_cast<float>(acc);
  }
}

void sign_unpack_ref(SignCode code, const uint64_t* S, float* out, int64_t rows, int64_t cols) {
  const int64_t rw = sign_row_words(code, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = static_cast<float>(sign_at(code, S + r * rw, c));
}

const char* sign_gemv_isa() {
  const RowsFn f = pick_rows();
  return f == sign_rows_avx512 ? "avx512" : f == sign_rows_avx2 ? "avx2" : "scalar";
}

void sign_unpack(SignCode code, const uint64_t* S, float* out, int64_t rows, int64_t cols) {
  static const UnpackFn fn = pick_unpack();
  fn(code, S, out, rows, cols);
}

void sign_gemv_threads(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols,
                       int threads) {
  static const RowsFn fn = pick_rows();
  if (rows <= 0) return;
  const int64_t rw = sign_row_words(code, cols);
  for_row_slabs(rows, threads, [&](int64_t r0, int64_t r1) { fn(code, S + r0 * rw, x, y + r0, r1 - r0, cols); });
}

void sign_gemv(SignCode code, const uint64_t* S, const float* x, float* y, int64_t rows, int64_t cols) {
  // Nested inside another parallel region the team would be serialised anyway.
  const int nt = omp_in_parallel() || rows * cols < kParallelMinWeights ? 1 : omp_get_max_threads();
  sign_gemv_threads(code, S, x, y, rows, cols, nt);
}

void sign_matmul(SignCode code, const uint64_t* S, const float* x, float* y, int64_t n, int64_t rows, int64_t cols) {
  if (n <= 0 || rows <= 0) return;
  if (n == 1) return sign_gemv(code, S, x, y, rows, cols);
  const int64_t rw = sign_row_words(code, cols);
  if (n <= batch_max_tokens(code)) {
    static const TokensFn fn = pick_tokens();
    const int nt = rows * cols * n >= kParallelMinWeights ? team_threads() : 1;
    for_row_slabs(rows, nt, [&](int64_t r0, int64_t r1) { fn(code, S + r0 * rw, x, n, y + r0, rows, r1 - r0, cols); });
    return;
  }
  // Panels unpacked to +-1/0 f32, then sgemm of all n tokens (row_slabs.h).
  panel_sgemm(n, rows, cols, x, y,
              [&](int64_t r0, int64_t nr, float* wf) { sign_unpack(code, S + r0 * rw, wf, nr, cols); });
}

}  // namespace shrink::kernels
