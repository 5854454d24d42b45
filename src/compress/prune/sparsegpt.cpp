#include "compress/prune/sparsegpt.h"

#include <algorithm>
#include <cmath>

#include "compress/calib/obs.h"
#include "core/error.h"

namespace shrink::prune {

namespace {

// OBS saliency of removing weight w of column i: w² / [H⁻¹]_ii, with
// [H⁻¹]_ii of the not-yet-visited columns = U_ii² (paper eq. 3 with U).
inline float saliency(float w, float u_ii) { return w * w / (u_ii * u_ii); }

}  // namespace

SparseGptResult sparsegpt_prune(const Tensor& w, std::vector<float> h, const SparsityPattern& p,
                                const SparseGptOptions& opt) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "SparseGPT needs a 2-D f32 weight");
  const int64_t rows = w.dim(0), n = w.dim(1);
  SHRINK_CHECK(int64_t(h.size()) == n * n, "SparseGPT: Hessian of ", h.size(), " entries for ", n, " columns");
  std::vector<float> wt = calib::to_column_major(w.f32(), rows, n);
  // Inputs that were always zero carry no information: their weights are free (as in GPTQ).
  for (int64_t c = 0; c < n; ++c)
    if (h[c * n + c] == 0) {
      h[c * n + c] = 1;
      std::fill_n(wt.begin() + c * rows, rows, 0.0f);
    }
  SparseGptResult res;
  const std::vector<float> u = calib::inverse_cholesky_upper(h, n, opt.damp, &res.damp_used, "SparseGPT");
  h.clear(), h.shrink_to_fit();

  int64_t block = std::max<int64_t>(1, opt.block);
  if (p.is_nm()) block = (block + p.m - 1) / p.m * p.m;  // an N:M group never straddles two blocks
  std::vector<uint8_t> mask(static_cast<size_t>(block * rows));  // column-major within the block, 1 = prune
  std::vector<float> score(static_cast<size_t>(block * rows));
  int64_t block_start = 0;

  calib::ObsSweep sweep;
  sweep.wt = wt.data(), sweep.rows = rows, sweep.cols = n, sweep.u = u.data(), sweep.block = block;
  sweep.begin_block = [&](int64_t i1, int64_t i2) {
    block_start = i1;
    std::fill(mask.begin(), mask.end(), 0);
    if (p.is_nm()) return;
    const int64_t count = rows * (i2 - i1);
    for (int64_t i = i1; i < i2; ++i)
      for (int64_t r = 0; r < rows; ++r)
        score[(i - i1) * rows + r] = saliency(wt[i * rows + r], u[i * n + i]);
    mark_lowest(score.data(), count, 1, std::llround(p.ratio * double(count)), mask.data());
  };
  sweep.replace = [&](int64_t i, const float* col, float* q) {
    const int64_t off = i - block_start;
    if (p.is_nm() && i % p.m == 0) {
      const int64_t len = std::min<int64_t>(p.m, n - i), drop = len - nm_keep(p, len);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < len; ++j)
          score[(off + j) * rows + r] = saliency(wt[(i + j) * rows + r], u[(i + j) * n + i + j]);
        mark_lowest(score.data() + off * rows + r, len, rows, drop, mask.data() + off * rows + r);
      }
    }
    const uint8_t* m = mask.data() + off * rows;
    for (int64_t r = 0; r < rows; ++r) q[r] = m[r] ? 0.0f : col[r];
  };
  calib::obs_sweep(sweep);

  res.weight = Tensor::alloc(DType::F32, {rows, n});
  calib::from_column_major(wt.data(), rows, n, res.weight.f32());
  return res;
}

}  // namespace shrink::prune
