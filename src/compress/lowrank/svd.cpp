// The matrix-level pieces of compress/lowrank: input transforms, the SVD of
// W T, rank choice and truncation into factors.
#include <Eigen/Core>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <random>

#include "compress/calib/cholesky.h"
#include "compress/lowrank/lowrank.h"
#include "core/error.h"

namespace shrink::lowrank {

namespace {
using MatCol = Eigen::MatrixXd;
using MatRow = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}  // namespace

Method parse_method(const std::string& name) {
  if (name == "svd") return Method::Svd;
  if (name == "asvd") return Method::Asvd;
  if (name == "svd-llm") return Method::SvdLlm;
  fail("unknown factorization method '", name, "' (known: svd, asvd, svd-llm)");
}

const char* method_name(Method m) {
  switch (m) {
    case Method::Svd: return "svd";
    case Method::Asvd: return "asvd";
    case Method::SvdLlm: return "svd-llm";
  }
  return "?";
}

InputTransform identity_transform(int64_t cols) {
  InputTransform t;
  t.cols = cols;
  return t;
}

InputTransform asvd_transform(const std::vector<float>& mean_abs, double alpha) {
  SHRINK_CHECK(alpha >= 0 && alpha <= 4, "ASVD alpha ", alpha, " is outside [0, 4]");
  InputTransform t;
  t.kind = InputTransform::Kind::Diagonal;
  t.cols = static_cast<int64_t>(mean_abs.size());
  double mean = 0;
  for (float a : mean_abs) mean += a;
  mean = t.cols ? mean / double(t.cols) : 0;
  // A column that never saw an input would get scale 0 and no inverse: floor
  // it at a small fraction of the average instead (its weights then matter little).
  const double floor = std::max(mean * 1e-6, 1e-30);
  for (float a : mean_abs) t.diag.push_back(std::pow(std::max(double(a), floor), alpha));
  return t;
}

InputTransform whitening_transform(const std::vector<float>& h, int64_t cols, double damp) {
  InputTransform t;
  t.kind = InputTransform::Kind::Lower;
  t.cols = cols;
  const Eigen::LLT<calib::MatD> llt = calib::damped_cholesky(h, cols, damp, &t.damp_used, "SVD-LLM");
  t.lower.resize(size_t(cols * cols));
  Eigen::Map<MatRow>(t.lower.data(), cols, cols) = llt.matrixL();
  return t;
}

namespace {

// A = W T in double, column-major.
MatCol transformed(const Tensor& w, const InputTransform& t) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "factorization needs a 2-D f32 weight");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  SHRINK_CHECK(t.cols == cols, "input transform of ", t.cols, " columns for a weight of ", cols);
  MatCol a = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(w.f32(), rows, cols)
                 .cast<double>();
  if (t.kind == InputTransform::Kind::Diagonal)
    a = a * Eigen::Map<const Eigen::VectorXd>(t.diag.data(), cols).asDiagonal();
  else if (t.kind == InputTransform::Kind::Lower)
    a = a * Eigen::Map<const MatRow>(t.lower.data(), cols, cols).triangularView<Eigen::Lower>();
  return a;
}

// Spectrum from the SVD of `b` (k = its singular values), with U = q_left * U_b (q_left empty: U_b).
Spectrum spectrum_of(const MatCol& b, const MatCol* q_left, int64_t rows, int64_t cols, double total_energy) {
  // Divide-and-conquer SVD: Jacobi's accuracy is not needed for truncation and it is far slower on big matrices.
  Eigen::BDCSVD<MatCol> svd(b, Eigen::ComputeThinU | Eigen::ComputeThinV);
  Spectrum s;
  s.rows = rows, s.cols = cols, s.total_energy = total_energy;
  const int64_t k = svd.singularValues().size();
  s.sigma.assign(svd.singularValues().data(), svd.singularValues().data() + k);
  s.u.resize(size_t(rows * k)), s.v.resize(size_t(cols * k));
  if (q_left)
    Eigen::Map<MatRow>(s.u.data(), rows, k) = *q_left * svd.matrixU();
  else
    Eigen::Map<MatRow>(s.u.data(), rows, k) = svd.matrixU();
  Eigen::Map<MatRow>(s.v.data(), cols, k) = svd.matrixV();
  return s;
}

// An orthonormal basis of y's columns (thin Q of its QR).
MatCol orthonormal(const MatCol& y) {
  Eigen::HouseholderQR<MatCol> qr(y);
  return qr.householderQ() * MatCol::Identity(y.rows(), y.cols());
}

}  // namespace

Spectrum decompose(const Tensor& w, const InputTransform& t) {
  const MatCol a = transformed(w, t);
  return spectrum_of(a, nullptr, a.rows(), a.cols(), a.squaredNorm());
}

Spectrum decompose_randomized(const Tensor& w, const InputTransform& t, int64_t rank, int power_iters) {
  const int64_t rows = w.dim(0), cols = w.dim(1), k = std::min(rows, cols);
  const int64_t width = std::min(k, rank + std::max<int64_t>(16, rank / 10));  // oversampling p
  if (2 * width > k) return decompose(w, t);  // not cheaper than the full SVD
  const MatCol a = transformed(w, t);
  std::mt19937_64 rng(0x5eed);
  std::normal_distribution<double> gauss;
  MatCol omega(cols, width);
  for (int64_t i = 0; i < omega.size(); ++i) omega.data()[i] = gauss(rng);
  MatCol q = orthonormal(a * omega);
  for (int i = 0; i < power_iters; ++i) q = orthonormal(a * orthonormal(a.transpose() * q));  // sharpen the decay
  const MatCol b = q.transpose() * a;  // width x cols
  return spectrum_of(b, &q, rows, cols, a.squaredNorm());
}

int64_t energy_rank(const Spectrum& s, double energy) {
  SHRINK_CHECK(energy > 0 && energy <= 1, "energy ", energy, " is outside (0, 1]");
  const double total = s.total_energy;
  double kept = 0;
  for (size_t i = 0; i < s.sigma.size(); ++i) {
    kept += s.sigma[i] * s.sigma[i];
    if (kept >= energy * total * (1 - 1e-12)) return int64_t(i) + 1;
  }
  return std::max<int64_t>(1, int64_t(s.sigma.size()));
}

int64_t ratio_rank(int64_t out, int64_t in, double ratio) {
  SHRINK_CHECK(ratio > 0 && ratio <= 1, "kept parameter ratio ", ratio, " is outside (0, 1]");
  const auto r = static_cast<int64_t>(std::floor(ratio * double(out) * double(in) / double(out + in)));
  return std::clamp<int64_t>(r, 1, std::min(out, in));
}

std::pair<Tensor, Tensor> truncate(const Spectrum& s, const InputTransform& t, int64_t rank, DType dtype) {
  const int64_t rows = s.rows, cols = s.cols, k = int64_t(s.sigma.size());
  SHRINK_CHECK(rank >= 1 && rank <= k, "rank ", rank, " is outside 1..", k);
  SHRINK_CHECK(dtype == DType::F32 || dtype == DType::BF16, "low-rank factors are f32 or bf16, not ", dtype_name(dtype));
  Eigen::VectorXd root(rank);
  for (int64_t i = 0; i < rank; ++i) root[i] = std::sqrt(s.sigma[i]);
  const MatRow u = Eigen::Map<const MatRow>(s.u.data(), rows, k).leftCols(rank) * root.asDiagonal();
  // V^T = sqrt(S_r) V_r^T T^-1, computed transposed: T^-T V_r sqrt(S_r) (cols x rank).
  MatCol vt = Eigen::Map<const MatRow>(s.v.data(), cols, k).leftCols(rank) * root.asDiagonal();
  if (t.kind == InputTransform::Kind::Diagonal) {
    for (int64_t c = 0; c < cols; ++c) vt.row(c) /= t.diag[c];
  } else if (t.kind == InputTransform::Kind::Lower) {
    Eigen::Map<const MatRow> l(t.lower.data(), cols, cols);
    l.transpose().triangularView<Eigen::Upper>().solveInPlace(vt);  // L^T X = V_r sqrt(S)
  }
  Tensor tu = Tensor::alloc(DType::F32, {rows, rank}), tv = Tensor::alloc(DType::F32, {rank, cols});
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(tu.f32(), rows, rank) = u.cast<float>();
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(tv.f32(), rank, cols) =
      vt.transpose().cast<float>();
  if (dtype == DType::F32) return {tu, tv};
  return {tu.to(dtype), tv.to(dtype)};
}

}  // namespace shrink::lowrank
