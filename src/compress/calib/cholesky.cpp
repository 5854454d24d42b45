#include "compress/calib/cholesky.h"

#include "core/error.h"

namespace shrink::calib {

Eigen::LLT<MatD> damped_cholesky(const std::vector<float>& h, int64_t n, double damp, double* damp_used, const char* who) {
  SHRINK_CHECK(int64_t(h.size()) == n * n, who, ": Hessian of ", h.size(), " entries for ", n, " columns");
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) mean_diag += h[i * n + i];
  mean_diag = n > 0 ? mean_diag / double(n) : 0;
  if (mean_diag <= 0) mean_diag = 1;  // all inputs zero: any damped H is as good as another
  const MatD base =
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(h.data(), n, n).cast<double>();
  for (double d = damp;; d = next_damp(d)) {
    SHRINK_CHECK(d <= 10, who, ": the Hessian stays singular even with dampening ", d);
    MatD H = base;
    H.diagonal().array() += d * mean_diag;
    Eigen::LLT<MatD> llt(H);
    if (llt.info() != Eigen::Success) continue;
    *damp_used = d;
    return llt;
  }
}

}  // namespace shrink::calib
