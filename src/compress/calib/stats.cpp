#include "compress/calib/stats.h"

#include <dnnl.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace shrink::calib {

Hessian::Hessian(int64_t cols) : cols_(cols), sum_(size_t(cols * cols), 0.0f) {}

void Hessian::add(const float* x, int64_t n) {
  // sum += x^T x (x row-major n x cols).
  const dnnl_status_t st = dnnl_sgemm('T', 'N', cols_, cols_, n, 1.0f, x, cols_, x, cols_, 1.0f, sum_.data(), cols_);
  SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
  count_ += n;
}

std::vector<float> Hessian::matrix() const {
  std::vector<float> h(sum_);
  const float s = count_ > 0 ? 2.0f / float(count_) : 0.0f;
  for (float& v : h) v *= s;
  return h;
}

void GroupHessians::observe(const Linear& l, const float* x, int64_t n) {
  auto it = hessians_.find(&l);
  if (it == hessians_.end()) {
    if (alias_.count(&l)) return;
    if (last_ && x == last_x_ && n == last_n_ && last_->in_features() == l.in_features()) {
      alias_[&l] = root(last_);
      return;
    }
    it = hessians_.emplace(&l, std::make_unique<Hessian>(l.in_features())).first;
  }
  it->second->add(x, n);
  last_ = &l, last_x_ = x, last_n_ = n;
}

const Linear* GroupHessians::root(const Linear* l) const {
  auto it = alias_.find(l);
  return it == alias_.end() ? l : it->second;
}

const Hessian& GroupHessians::of(const Linear& l) const {
  auto it = hessians_.find(root(&l));
  SHRINK_CHECK(it != hessians_.end(), l.name(), ": no calibration inputs were observed");
  return *it->second;
}

void GroupHessians::clear() {
  hessians_.clear(), alias_.clear();
  last_ = nullptr, last_x_ = nullptr, last_n_ = 0;
}

void ColumnStats::add(const float* x, int64_t n) {
  const int64_t cols = static_cast<int64_t>(sum_sq.size());
  for (int64_t t = 0; t < n; ++t) {
    const float* row = x + t * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = row[c], a = std::fabs(v);
      sum_sq[c] += double(v) * v;
      sum_abs[c] += a;
      max_abs[c] = std::max(max_abs[c], a);
    }
  }
  count += n;
}

std::vector<float> ColumnStats::mean_sq() const {
  std::vector<float> m(sum_sq.size());
  for (size_t c = 0; c < m.size(); ++c) m[c] = count ? float(sum_sq[c] / double(count)) : 0.0f;
  return m;
}

std::vector<float> ColumnStats::mean_abs() const {
  std::vector<float> m(sum_abs.size());
  for (size_t c = 0; c < m.size(); ++c) m[c] = count ? float(sum_abs[c] / double(count)) : 0.0f;
  return m;
}

double relative_output_error(const float* w, const float* q, int64_t rows, int64_t n, const std::vector<float>& h) {
  std::vector<float> d(static_cast<size_t>(rows * n)), dh(size_t(rows * n)), wh(size_t(rows * n));
  for (int64_t i = 0; i < rows * n; ++i) d[i] = w[i] - q[i];
  auto sgemm = [&](const float* a, float* c) {
    const dnnl_status_t st = dnnl_sgemm('N', 'N', rows, n, n, 1.0f, a, n, h.data(), n, 0.0f, c, n);
    SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
  };
  sgemm(d.data(), dh.data());
  sgemm(w, wh.data());
  double num = 0, den = 0;
  for (int64_t i = 0; i < rows * n; ++i) num += double(dh[i]) * d[i], den += double(wh[i]) * w[i];
  return den > 0 ? num / den : 0.0;
}

double relative_weight_error(const float* w, const float* q, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(w[i]) - q[i];
    num += d * d, den += double(w[i]) * w[i];
  }
  return den > 0 ? num / den : 0;
}

}  // namespace shrink::calib
