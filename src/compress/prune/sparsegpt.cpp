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

// The N:M mask of the group of columns starting at i (a multiple of M): per
// row, the M - N of the group's weights with the lowest saliency. cols: the
// group's first column (column-major, `rows` apart); u: U; score and mask:
// the group's first column in the caller's column-major scratch.
void select_nm(const float* cols, int64_t rows, const float* u, int64_t n, int64_t i, const SparsityPattern& p,
               float* score, uint8_t* mask) {
  const int64_t len = std::min<int64_t>(p.m, n - i), drop = len - nm_keep(p, len);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < len; ++j) score[j * rows + r] = saliency(cols[j * rows + r], u[(i + j) * n + i + j]);
    mark_lowest(score + r, len, rows, drop, mask + r);
  }
}

// Joint mode's quantizer, driven like gptq_quantize drives it (compress/quant/gptq.cpp,
// without activation order): a chunk's scales are fixed when the sweep reaches
// its first column, or once up front when a chunk is wider than 1024 columns
// (per-channel / per-tensor specs, as GPTQ's "upfront" path). Which values the
// scales are fixed from is the caller's choice (SparseGptSweeper::look_ahead,
// make_joint: what the kept weights will be when rounded, not their current values).
class JointRounding {
 public:
  JointRounding(std::unique_ptr<quant::ColumnQuantizer> q, int64_t rows)
      : q_(std::move(q)), masked_(static_cast<size_t>(rows)) {}
  int64_t chunk() const { return q_->chunk(); }
  bool upfront() const { return q_->chunk() > 1024; }
  // Fixes the scales of the chunk starting at column c0 from wt (column-major, all columns).
  void choose(const float* wt, int64_t c0) { q_->choose(wt, c0, nullptr); }
  // Column i's replacement: pruned weights (m[r] = 1) as 0, kept ones rounded to the grid.
  void replace(int64_t i, const float* col, const uint8_t* m, float* q) {
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
};

int64_t lcm(int64_t a, int64_t b) { return a / std::gcd(a, b) * b; }

// The callbacks of the OBS sweep (calib::obs_sweep): mask selection and column replacement.
class SparseGptSweeper {
 public:
  SparseGptSweeper(float* wt, const float* u, int64_t rows, int64_t n, const SparsityPattern& p, int64_t block,
                   JointRounding* joint)
      : wt_(wt), u_(u), rows_(rows), n_(n), p_(p), joint_(joint), mask_(size_t(block * rows)),
        score_(size_t(block * rows)) {
    if (joint_ && !joint_->upfront())
      look_.resize(size_t(rows * n)), look_mask_.resize(mask_.size()), look_score_.resize(score_.size());
  }

  void begin_block(int64_t i1, int64_t i2) {
    block_start_ = i1, block_end_ = i2;
    std::fill(mask_.begin(), mask_.end(), 0);
    if (p_.is_nm()) return;
    const int64_t count = rows_ * (i2 - i1);
    for (int64_t i = i1; i < i2; ++i)
      for (int64_t r = 0; r < rows_; ++r)
        score_[(i - i1) * rows_ + r] = saliency(wt_[i * rows_ + r], u_[i * n_ + i]);
    mark_lowest(score_.data(), count, 1, std::llround(p_.ratio * double(count)), mask_.data());
  }

  void replace(int64_t i, const float* col, float* q) {
    const int64_t off = i - block_start_;
    if (p_.is_nm() && i % p_.m == 0)
      select_nm(wt_ + i * rows_, rows_, u_, n_, i, p_, score_.data() + off * rows_, mask_.data() + off * rows_);
    const uint8_t* m = mask_.data() + off * rows_;
    if (!joint_) {
      for (int64_t r = 0; r < rows_; ++r) q[r] = m[r] ? 0.0f : col[r];
      return;
    }
    if (!joint_->upfront() && i % joint_->chunk() == 0) {
      look_ahead(i);
      joint_->choose(look_.data(), i);
    }
    joint_->replace(i, col, m, q);
  }

 private:
  // The values the chunk starting at column i will have when its columns are
  // rounded, as far as pruning decides them: plain SparseGPT (masks selected
  // as the sweep will select them, pruned weights set to 0 and their error
  // propagated) over the chunk's columns, on a copy. Fixing the chunk's scales
  // from its current values instead (GPTQ's rule) ignores the compensation
  // that pruning the chunk's own earlier columns is about to add to its later
  // ones; those updates are large next to rounding errors, so kept weights
  // outgrow the block's range and are clamped (teacher-9M's attn_output: most
  // of the Q8_0 error was clamping). Pruned weights count as the 0 they become.
  void look_ahead(int64_t i) {
    const int64_t c1 = std::min(i + joint_->chunk(), n_), off = i - block_start_;
    // N:M groups starting in the chunk need their whole group to choose a mask.
    const int64_t end = p_.is_nm() ? std::min(block_end_, (c1 + p_.m - 1) / p_.m * p_.m) : c1;
    std::copy(wt_ + i * rows_, wt_ + end * rows_, look_.begin() + i * rows_);
    std::copy(mask_.begin() + off * rows_, mask_.begin() + (end - block_start_) * rows_, look_mask_.begin());
    std::vector<float> e(static_cast<size_t>(rows_));
    for (int64_t j = i; j < c1; ++j) {
      float* cj = look_.data() + j * rows_;
      uint8_t* mj = look_mask_.data() + (j - i) * rows_;
      if (p_.is_nm() && j % p_.m == 0) select_nm(cj, rows_, u_, n_, j, p_, look_score_.data() + (j - i) * rows_, mj);
      const float d = u_[j * n_ + j];
      for (int64_t r = 0; r < rows_; ++r) {
        e[r] = mj[r] ? cj[r] / d : 0.0f;
        if (mj[r]) cj[r] = 0.0f;
      }
      for (int64_t k = j + 1; k < end; ++k) {
        const float f = u_[j * n_ + k];
        float* ck = look_.data() + k * rows_;
        for (int64_t r = 0; r < rows_; ++r) ck[r] -= e[r] * f;
      }
    }
  }

  float* wt_;
  const float* u_;
  int64_t rows_, n_;
  const SparsityPattern& p_;
  JointRounding* joint_;
  std::vector<uint8_t> mask_;  // column-major within the lazy block, 1 = prune
  std::vector<float> score_;
  int64_t block_start_ = 0, block_end_ = 0;
  // Look-ahead values at their columns' places (rows x n, column-major: the
  // layout ColumnQuantizer::choose reads; one copy of W, only a chunk used at a time).
  std::vector<float> look_;
  std::vector<uint8_t> look_mask_;    // the look-ahead's masks, from the chunk's first column
  std::vector<float> look_score_;
};

// Joint mode's rounding for opt (none without a quantized target). Upfront
// (per-channel / per-tensor) scales are fixed here, once, from what plain
// SparseGPT makes of the weights: the look-ahead of the whole matrix (see
// SparseGptSweeper::look_ahead).
std::optional<JointRounding> make_joint(const Tensor& w, const std::vector<float>& h, const SparsityPattern& p,
                                        const SparseGptOptions& opt) {
  const int64_t rows = w.dim(0), n = w.dim(1);
  std::optional<JointRounding> joint;
  if (opt.make_quantizer) {
    joint.emplace(opt.make_quantizer(rows, n), rows);
  } else if (opt.quant && !opt.quant->is_dense()) {
    SHRINK_CHECK(joint_zero_exact(*opt.quant), "SparseGPT joint: ", opt.quant->name(),
                 " cannot store a pruned weight as exactly 0 (per-block minimum); use q4_0, q5_0, q8_0, q3_k, q6_k "
                 "or a group format such as int4g128");
    SHRINK_CHECK(opt.quant->fits(n), "SparseGPT joint: rows of ", n, " do not split into ", opt.quant->name(), " blocks");
    joint.emplace(quant::ColumnQuantizer::make(*opt.quant, rows, n), rows);
  }
  if (joint && joint->upfront()) {
    SparseGptOptions plain = opt;
    plain.quant.reset(), plain.make_quantizer = nullptr;
    const Tensor pred = sparsegpt_prune(w, h, p, plain).weight;
    const std::vector<float> pt = calib::to_column_major(pred.f32(), rows, n);
    for (int64_t c0 = 0; c0 < n; c0 += joint->chunk()) joint->choose(pt.data(), c0);
  }
  return joint;
}

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
  std::optional<JointRounding> joint = make_joint(w, h, p, opt);
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

  // An N:M group never straddles two lazy blocks; neither does a quantization chunk (as in GPTQ).
  int64_t unit = p.is_nm() ? p.m : 1;
  if (joint && !joint->upfront()) unit = lcm(unit, joint->chunk());
  const int64_t block = (std::max<int64_t>(1, opt.block) + unit - 1) / unit * unit;
  SparseGptSweeper sweeper(wt.data(), u.data(), rows, n, p, block, joint ? &*joint : nullptr);
  calib::ObsSweep sweep;
  sweep.wt = wt.data(), sweep.rows = rows, sweep.cols = n, sweep.u = u.data(), sweep.block = block;
  sweep.begin_block = [&](int64_t i1, int64_t i2) { sweeper.begin_block(i1, i2); };
  sweep.replace = [&](int64_t i, const float* col, float* q) { sweeper.replace(i, col, q); };
  calib::obs_sweep(sweep);

  res.weight = Tensor::alloc(DType::F32, {rows, n});
  calib::from_column_major(wt.data(), rows, n, res.weight.f32());
  if (joint) res.quantized = joint->finish();
  return res;
}

}  // namespace shrink::prune
