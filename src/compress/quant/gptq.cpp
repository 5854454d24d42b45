#include "compress/quant/gptq.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace shrink::quant {

GptqResult gptq_quantize(const Tensor& w, std::vector<float> h, const QuantTarget& target, const GptqOptions& opt) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "GPTQ needs a 2-D f32 weight");
  const int64_t rows = w.dim(0), n = w.dim(1);
  SHRINK_CHECK(int64_t(h.size()) == n * n, "GPTQ: Hessian of ", h.size(), " entries for ", n, " columns");
  auto quantizer = ColumnQuantizer::make(target, rows, n);
  const int64_t chunk = quantizer->chunk();

  // Column-major working copy: a column of W is contiguous.
  std::vector<float> wt = calib::to_column_major(w.f32(), rows, n);
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
  const std::vector<float> u = calib::inverse_cholesky_upper(h, n, opt.damp, &res.damp_used, "GPTQ");
  h.clear(), h.shrink_to_fit();

  calib::ObsSweep sweep;
  sweep.wt = wt.data(), sweep.rows = rows, sweep.cols = n, sweep.u = u.data(), sweep.block = block;
  sweep.replace = [&](int64_t i, const float* col, float* q) {
    const int64_t c = perm[i];
    if (!upfront && c % chunk == 0) quantizer->choose(wt.data(), c, importance);
    quantizer->round_column(c, col, q);
  };
  calib::obs_sweep(sweep);
  res.weight = quantizer->finish();
  return res;
}

}  // namespace shrink::quant
