#include "compress/prune/sparsegpt.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "compress/calib/obs.h"
#include "core/error.h"

namespace shrink::prune {

namespace {

// OBS saliency of removing weight w of column i: w² / [H⁻¹]_ii, with
// [H⁻¹]_ii of the not-yet-visited columns = U_ii² (paper eq. 3 with U).
inline float saliency(float w, float u_ii) { return w * w / (u_ii * u_ii); }

// Joint mode's quantizer, driven like gptq_quantize drives it (compress/quant/gptq.cpp,
// without activation order): a chunk's scales are fixed from the current,
// already-updated weights when the sweep reaches its first column, or once up
// front from the original weights when a chunk is wider than 1024 columns
// (per-channel / per-tensor specs, as GPTQ's "upfront" path).
class JointRounding {
 public:
  JointRounding(const quant::QuantTarget& t, int64_t rows, int64_t cols)
      : q_(quant::ColumnQuantizer::make(t, rows, cols)), masked_(static_cast<size_t>(rows)) {
    upfront_ = q_->chunk() > 1024;
  }
  int64_t chunk() const { return q_->chunk(); }
  void start(const float* wt, int64_t cols) {
    if (upfront_)
      for (int64_t c0 = 0; c0 < cols; c0 += chunk()) q_->choose(wt, c0, nullptr);
  }
  // Column i's replacement: pruned weights (m[r] = 1) as 0, kept ones rounded to the grid.
  void replace(const float* wt, int64_t i, const float* col, const uint8_t* m, float* q) {
    if (!upfront_ && i % chunk() == 0) q_->choose(wt, i, nullptr);
    const int64_t rows = int64_t(masked_.size());
    for (int64_t r = 0; r < rows; ++r) masked_[r] = m[r] ? 0.0f : col[r];
    q_->round_column(i, masked_.data(), q);
    for (int64_t r = 0; r < rows; ++r)
      SHRINK_CHECK(!m[r] || q[r] == 0.0f, "SparseGPT joint: a pruned weight did not round to 0 (grid without 0)");
  }
  std::shared_ptr<WeightRepr> finish() { return q_->finish(); }

 private:
  std::unique_ptr<quant::ColumnQuantizer> q_;
  std::vector<float> masked_;
  bool upfront_ = false;
};

int64_t lcm(int64_t a, int64_t b) { return a / std::gcd(a, b) * b; }

}  // namespace

bool joint_zero_exact(const quant::QuantTarget& t) {
  if (t.is_sign()) return false;
  if (!t.is_block || t.is_dense()) return true;
  switch (t.block) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q5_0: case DType::Q3_K: case DType::Q6_K: return true;
    default: return false;
  }
}

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

  std::optional<JointRounding> joint;
  if (opt.quant && !opt.quant->is_dense()) {
    SHRINK_CHECK(joint_zero_exact(*opt.quant), "SparseGPT joint: ", opt.quant->name(),
                 " cannot store a pruned weight as exactly 0 (per-block minimum); use q4_0, q5_0, q8_0, q3_k, q6_k "
                 "or a group format such as int4g128");
    SHRINK_CHECK(opt.quant->fits(n), "SparseGPT joint: rows of ", n, " do not split into ", opt.quant->name(), " blocks");
    joint.emplace(*opt.quant, rows, n);
    joint->start(wt.data(), n);
  }
  int64_t block = std::max<int64_t>(1, opt.block);
  // An N:M group never straddles two lazy blocks; neither does a quantization chunk (as in GPTQ).
  int64_t unit = p.is_nm() ? p.m : 1;
  if (joint && joint->chunk() <= 1024) unit = lcm(unit, joint->chunk());
  block = (block + unit - 1) / unit * unit;
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
    if (joint) return joint->replace(wt.data(), i, col, m, q);
    for (int64_t r = 0; r < rows; ++r) q[r] = m[r] ? 0.0f : col[r];
  };
  calib::obs_sweep(sweep);

  res.weight = Tensor::alloc(DType::F32, {rows, n});
  calib::from_column_major(wt.data(), rows, n, res.weight.f32());
  if (joint) res.quantized = joint->finish();
  return res;
}

}  // namespace shrink::prune
