#include "compress/calib/obs.h"

#include <dnnl.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>

#include "core/error.h"

namespace shrink::calib {

namespace {
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}  // namespace

std::vector<float> inverse_cholesky_upper(const std::vector<float>& h, int64_t n, float damp, double* damp_used,
                                          const char* who) {
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) mean_diag += h[i * n + i];
  mean_diag /= double(n);
  for (double d = damp;; d *= 10) {
    SHRINK_CHECK(d <= 10, who, ": the Hessian stays singular even with dampening ", d);
    MatD H = Eigen::Map<const MatF>(h.data(), n, n).cast<double>();
    H.diagonal().array() += d * mean_diag;
    Eigen::LLT<MatD> llt(H);
    if (llt.info() != Eigen::Success) continue;
    MatD Hinv = llt.solve(MatD::Identity(n, n));
    Eigen::LLT<MatD> llt2(Hinv);
    if (llt2.info() != Eigen::Success) continue;
    MatD U = llt2.matrixU();
    *damp_used = d;
    std::vector<float> u(static_cast<size_t>(n * n));
    Eigen::Map<MatF>(u.data(), n, n) = U.cast<float>();
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
  const int64_t rows = w.dim(0), n = w.dim(1);
  std::vector<float> d(static_cast<size_t>(rows * n)), dh(size_t(rows * n)), wh(size_t(rows * n));
  for (int64_t i = 0; i < rows * n; ++i) d[i] = w.f32()[i] - q.f32()[i];
  sgemm('N', 'N', rows, n, n, 1.0f, d.data(), n, h.data(), n, 0.0f, dh.data(), n);
  sgemm('N', 'N', rows, n, n, 1.0f, w.f32(), n, h.data(), n, 0.0f, wh.data(), n);
  double num = 0, den = 0;
  for (int64_t i = 0; i < rows * n; ++i) num += double(dh[i]) * d[i], den += double(wh[i]) * w.f32()[i];
  return den > 0 ? num / den : 0.0;
}

double relative_weight_error(const Tensor& w, const Tensor& q) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double d = double(w.f32()[i]) - q.f32()[i];
    num += d * d, den += double(w.f32()[i]) * w.f32()[i];
  }
  return den > 0 ? num / den : 0;
}

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
