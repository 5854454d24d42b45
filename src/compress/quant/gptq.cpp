#include "compress/quant/gptq.h"

#include <dnnl.h>

#include <algorithm>
#include <numeric>

#include "compress/calib/cholesky.h"
#include "compress/calib/stats.h"
#include "core/error.h"

namespace shrink::quant {

namespace {

using calib::MatD;

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U), dampening H until both H
// and its inverse factor (calib/cholesky.h). Returns U as f32 row-major.
std::vector<float> inverse_cholesky_upper(const std::vector<float>& h, int64_t n, float damp, double* damp_used) {
  for (double start = damp;; start = calib::next_damp(*damp_used)) {
    Eigen::LLT<MatD> llt = calib::damped_cholesky(h, n, start, damp_used, "GPTQ");
    MatD Hinv = llt.solve(MatD::Identity(n, n));
    Eigen::LLT<MatD> llt2(Hinv);
    if (llt2.info() != Eigen::Success) continue;
    MatD U = llt2.matrixU();
    std::vector<float> u(static_cast<size_t>(n * n));
    Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(u.data(), n, n) = U.cast<float>();
    return u;
  }
}

void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
  const dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
}

}  // namespace

GptqResult gptq_quantize(const Tensor& w, std::vector<float> h, const QuantTarget& target, const GptqOptions& opt) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "GPTQ needs a 2-D f32 weight");
  const int64_t rows = w.dim(0), n = w.dim(1);
  SHRINK_CHECK(int64_t(h.size()) == n * n, "GPTQ: Hessian of ", h.size(), " entries for ", n, " columns");
  auto quantizer = ColumnQuantizer::make(target, rows, n);
  const int64_t chunk = quantizer->chunk();

  // Column-major working copy: a column of W is contiguous.
  std::vector<float> wt(static_cast<size_t>(rows * n));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c) wt[c * rows + r] = w.f32()[r * n + c];
  // Inputs that were always zero carry no information: their weights are free (GPTQ zeroes them).
  for (int64_t c = 0; c < n; ++c)
    if (h[c * n + c] == 0) {
      h[c * n + c] = 1;
      std::fill_n(wt.begin() + c * rows, rows, 0.0f);
    }
  std::vector<float> diag(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) diag[c] = h[c * n + c];
  const float* importance = opt.weighted_scales ? diag.data() : nullptr;

  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  int64_t block = opt.block;
  const bool upfront = opt.act_order || chunk > 1024;  // scales from the original weights
  if (!upfront) block = std::max<int64_t>(1, (std::max(block, chunk) + chunk - 1) / chunk) * chunk;
  if (upfront)
    for (int64_t c0 = 0; c0 < n; c0 += chunk) quantizer->choose(wt.data(), c0, importance);
  if (opt.act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return h[a * n + a] > h[b * n + b]; });
    std::vector<float> wp(wt.size()), hp(h.size());
    for (int64_t i = 0; i < n; ++i) {
      std::copy_n(wt.begin() + perm[i] * rows, rows, wp.begin() + i * rows);
      for (int64_t j = 0; j < n; ++j) hp[i * n + j] = h[perm[i] * n + perm[j]];
    }
    wt.swap(wp), h.swap(hp);
  }
  GptqResult res;
  const std::vector<float> u = inverse_cholesky_upper(h, n, opt.damp, &res.damp_used);
  h.clear(), h.shrink_to_fit();

  std::vector<float> err(static_cast<size_t>(block * rows)), q(static_cast<size_t>(rows));
  for (int64_t i1 = 0; i1 < n; i1 += block) {
    const int64_t i2 = std::min(i1 + block, n);
    for (int64_t i = i1; i < i2; ++i) {
      const int64_t c = perm[i];
      if (!upfront && c % chunk == 0) quantizer->choose(wt.data(), c, importance);
      float* col = wt.data() + i * rows;
      quantizer->round_column(c, col, q.data());
      const float d = u[i * n + i];
      float* e = err.data() + (i - i1) * rows;
      for (int64_t r = 0; r < rows; ++r) e[r] = (col[r] - q[r]) / d;
      // Eager update of the rest of this lazy block.
#pragma omp parallel for if (rows * (i2 - i) > (1 << 16))
      for (int64_t j = i + 1; j < i2; ++j) {
        const float f = u[i * n + j];
        float* cj = wt.data() + j * rows;
        for (int64_t r = 0; r < rows; ++r) cj[r] -= e[r] * f;
      }
    }
    // Lazy update of every later column: W[:, i2:] -= Err * U[i1:i2, i2:] (column-major here).
    if (i2 < n) sgemm('T', 'N', n - i2, rows, i2 - i1, -1.0f, u.data() + i1 * n + i2, n, err.data(), rows, 1.0f,
                      wt.data() + i2 * rows, rows);
  }
  res.weight = quantizer->finish();
  return res;
}

double relative_output_error(const Tensor& w, const Tensor& q, const std::vector<float>& h) {
  return calib::relative_output_error(w.f32(), q.f32(), w.dim(0), w.dim(1), h);
}

}  // namespace shrink::quant
