#include "compress/calib/obs.h"

#include <dnnl.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>

#include "compress/calib/cholesky.h"
#include "compress/calib/stats.h"
#include "core/error.h"

namespace shrink::calib {

namespace {
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}  // namespace

std::vector<float> inverse_cholesky_upper(const std::vector<float>& h, int64_t n, float damp, double* damp_used,
                                          const char* who) {
  // Dampen until H factors (calib/cholesky.h) and, rarely needed, until its inverse does too.
  for (double start = damp;; start = next_damp(*damp_used)) {
    Eigen::LLT<MatD> llt = damped_cholesky(h, n, start, damp_used, who);
    Eigen::LLT<MatD> llt2(llt.solve(MatD::Identity(n, n)));
    if (llt2.info() != Eigen::Success) continue;
    std::vector<float> u(static_cast<size_t>(n * n));
    Eigen::Map<MatF>(u.data(), n, n) = MatD(llt2.matrixU()).cast<float>();
    return u;
  }
}

void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
  const dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
}

void obs_sweep(const ObsSweep& s) {
  const int64_t rows = s.rows, n = s.cols, block = std::max<int64_t>(1, s.block);
  const float* u = s.u;
  std::vector<float> err(static_cast<size_t>(block * rows)), q(static_cast<size_t>(rows));
  for (int64_t i1 = 0; i1 < n; i1 += block) {
    const int64_t i2 = std::min(i1 + block, n);
    if (s.begin_block) s.begin_block(i1, i2);
    for (int64_t i = i1; i < i2; ++i) {
      float* col = s.wt + i * rows;
      s.replace(i, col, q.data());
      const float d = u[i * n + i];
      float* e = err.data() + (i - i1) * rows;
      for (int64_t r = 0; r < rows; ++r) e[r] = (col[r] - q[r]) / d;
      std::copy(q.begin(), q.end(), col);
      // Eager update of the rest of this lazy block.
#pragma omp parallel for if (rows * (i2 - i) > (1 << 16))
      for (int64_t j = i + 1; j < i2; ++j) {
        const float f = u[i * n + j];
        float* cj = s.wt + j * rows;
        for (int64_t r = 0; r < rows; ++r) cj[r] -= e[r] * f;
      }
    }
    // Lazy update of every later column: W[:, i2:] -= Err * U[i1:i2, i2:] (column-major here).
    if (i2 < n)
      sgemm('T', 'N', n - i2, rows, i2 - i1, -1.0f, u + i1 * n + i2, n, err.data(), rows, 1.0f, s.wt + i2 * rows, rows);
  }
}

double relative_output_error(const Tensor& w, const Tensor& q, const std::vector<float>& h) {
  return relative_output_error(w.f32(), q.f32(), w.dim(0), w.dim(1), h);
}

double relative_weight_error(const Tensor& w, const Tensor& q) { return relative_weight_error(w.f32(), q.f32(), w.numel()); }

std::vector<float> to_column_major(const float* w, int64_t rows, int64_t cols) {
  std::vector<float> wt(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) wt[c * rows + r] = w[r * cols + c];
  return wt;
}

void from_column_major(const float* wt, int64_t rows, int64_t cols, float* w) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w[r * cols + c] = wt[c * rows + r];
}

}  // namespace shrink::calib
