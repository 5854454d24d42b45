// Cholesky factorization of a calibration Hessian H = (2/N) X^T X with
// dampening, shared by GPTQ (which needs the factor of H^-1) and SVD-LLM
// (which whitens with the factor of X^T X). X^T X is only positive
// semi-definite: inputs that are always zero, or fewer tokens than columns,
// leave it singular. Both methods then add d * mean(diag H) to the diagonal
// (GPTQ's "percdamp"), raising d tenfold until the factorization succeeds.
#pragma once
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cstdint>
#include <vector>

namespace shrink::calib {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The Cholesky factorization of H + d * mean(diag H) * I for the first d of
// damp, 10 damp, 100 damp, ... (damp = 0 tries H itself, then 1e-6, 1e-5, ...)
// that is positive definite; throws naming `who` once d would exceed 10.
// h: n x n row-major (Hessian::matrix()).
Eigen::LLT<MatD> damped_cholesky(const std::vector<float>& h, int64_t n, double damp, double* damp_used, const char* who);

// The next dampening to try after `d` fails.
inline double next_damp(double d) { return d > 0 ? d * 10 : 1e-6; }

}  // namespace shrink::calib
