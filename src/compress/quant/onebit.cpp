#include "compress/quant/onebit.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace shrink::quant {

using kernels::SignCode;

namespace {

constexpr int64_t kColBlock = 256;  // columns per task when summing down columns of a row-major matrix
// Passes over fewer weights than this stay on one thread (waking the team costs more).
constexpr int64_t kParallelMin = int64_t{1} << 16;

float round_f16(float v) { return f16_to_f32(f32_to_f16(v)); }

// Column weights normalised to mean 1 (the fit is invariant to their scale),
// or empty when there are none or they are all zero.
std::vector<float> column_weights(const float* imp, int64_t cols) {
  if (!imp) return {};
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) {
    SHRINK_CHECK(std::isfinite(imp[c]) && imp[c] >= 0, "onebit: importance of column ", c, " is ", imp[c]);
    sum += imp[c];
  }
  if (sum <= 0) return {};
  std::vector<float> w(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) w[c] = static_cast<float>(imp[c] * double(cols) / sum);
  return w;
}

// g[c] = sum_r z a h / sum_r z h^2 (z null: all kept): the least-squares g
// given h on the kept entries of column c (0 when nothing is kept).
void fit_g(const float* a, const uint8_t* z, const std::vector<float>& h, std::vector<float>& g, int64_t rows,
           int64_t cols) {
  g.resize(static_cast<size_t>(cols));
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t c0 = 0; c0 < cols; c0 += kColBlock) {
    const int64_t c1 = std::min(cols, c0 + kColBlock);
    std::vector<double> num(static_cast<size_t>(c1 - c0)), den(static_cast<size_t>(c1 - c0));
    for (int64_t r = 0; r < rows; ++r) {
      const float* ar = a + r * cols;
      const double hr = h[r];
      for (int64_t c = c0; c < c1; ++c)
        if (!z || z[r * cols + c]) num[c - c0] += ar[c] * hr, den[c - c0] += hr * hr;
    }
    for (int64_t c = c0; c < c1; ++c) g[c] = den[c - c0] > 0 ? static_cast<float>(num[c - c0] / den[c - c0]) : 0.0f;
  }
}

// h[r] = sum_c wt z a g / sum_c wt z g^2: the weighted least-squares h given g.
void fit_h(const float* a, const uint8_t* z, const std::vector<float>& wt, const std::vector<float>& g,
           std::vector<float>& h, int64_t rows, int64_t cols) {
  h.resize(static_cast<size_t>(rows));
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    double num = 0, den = 0;
    for (int64_t c = 0; c < cols; ++c) {
      if (z && !z[r * cols + c]) continue;
      const double w = wt.empty() ? 1.0 : wt[c], gc = g[c];
      num += w * a[r * cols + c] * gc, den += w * gc * gc;
    }
    h[r] = den > 0 ? static_cast<float>(num / den) : 0.0f;
  }
}

// Rescales h by k and g by 1/k (the product is unchanged) so both have the
// same rms: keeps both well inside f16's range.
void balance(std::vector<float>& h, std::vector<float>& g) {
  double sh = 0, sg = 0;
  for (float v : h) sh += double(v) * v;
  for (float v : g) sg += double(v) * v;
  if (sh <= 0 || sg <= 0) return;
  const double k = std::sqrt(std::sqrt((sg / double(g.size())) / (sh / double(h.size()))));
  for (float& v : h) v = static_cast<float>(v * k);
  for (float& v : g) v = static_cast<float>(v / k);
}

// z[r,c] = |W[r,c]| > h[r] g[c] / 2: for these scales, the entries whose
// squared error is lower kept (+-h g) than zeroed. Returns how many changed.
int64_t update_mask(const float* a, const std::vector<float>& h, const std::vector<float>& g, std::vector<uint8_t>& z,
                    int64_t rows, int64_t cols) {
  int64_t changed = 0;
#pragma omp parallel for reduction(+ : changed) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint8_t keep = a[r * cols + c] > 0.5f * h[r] * g[c];
      changed += keep != z[r * cols + c];
      z[r * cols + c] = keep;
    }
  return changed;
}

// u[r] = sum_c A[r,c] s[c] v[c].
void mul_rows(const float* a, int64_t rows, int64_t cols, const std::vector<double>& s, const std::vector<double>& v,
              std::vector<double>& u) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < cols; ++c) acc += double(a[r * cols + c]) * s[c] * v[c];
    u[r] = acc;
  }
}

// t[c] = sum_r A[r,c] u[r] (row-major A: each task sums a block of columns down all rows).
void mul_cols(const float* a, int64_t rows, int64_t cols, const std::vector<double>& u, std::vector<double>& t) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t c0 = 0; c0 < cols; c0 += kColBlock) {
    const int64_t c1 = std::min(cols, c0 + kColBlock);
    std::fill(t.begin() + c0, t.begin() + c1, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) t[c] += double(a[r * cols + c]) * u[r];
  }
}

// Ternary: alternate the mask and the scales from the onebit fit (z all 1).
void refine_ternary(const float* a, int64_t rows, int64_t cols, const std::vector<float>& wt, int rounds,
                    std::vector<float>& h, std::vector<float>& g, std::vector<uint8_t>& z) {
  z.assign(static_cast<size_t>(rows * cols), 1);
  for (int i = 0; i < rounds; ++i) {
    if (update_mask(a, h, g, z, rows, cols) == 0 && i > 0) break;
    fit_g(a, z.data(), h, g, rows, cols);
    fit_h(a, z.data(), wt, g, h, rows, cols);
  }
  balance(h, g);
}

}  // namespace

void rank1_fit(const float* a, int64_t rows, int64_t cols, const float* importance, int iters, std::vector<float>& h,
               std::vector<float>& g) {
  const std::vector<float> wt = column_weights(importance, cols);
  std::vector<double> s(static_cast<size_t>(cols), 1.0);
  if (!wt.empty())
    for (int64_t c = 0; c < cols; ++c) s[c] = std::sqrt(double(wt[c]));
  // Power iteration for the top right singular vector v of M = A diag(s):
  // v <- M^T M v / |.|. M >= 0, so from a positive start it converges to the
  // Perron vector (>= 0), at the rate (sigma2/sigma1)^2, which is small for
  // |W| (its mean alone is a strong rank-1 part).
  std::vector<double> v(static_cast<size_t>(cols), 1.0 / std::sqrt(double(cols))), u(static_cast<size_t>(rows)),
      t(static_cast<size_t>(cols));
  for (int it = 0; it < iters; ++it) {
    mul_rows(a, rows, cols, s, v, u);
    mul_cols(a, rows, cols, u, t);
    double norm = 0, delta = 0;
    for (int64_t c = 0; c < cols; ++c) t[c] *= s[c], norm += t[c] * t[c];
    if (norm <= 0) break;  // |W| = 0 (or only zero-weight columns): h = 0 below
    norm = std::sqrt(norm);
    for (int64_t c = 0; c < cols; ++c) delta += (t[c] / norm - v[c]) * (t[c] / norm - v[c]), v[c] = t[c] / norm;
    if (delta < 1e-14) break;
  }
  // h = M v (the left factor sigma u); g: least squares given h (= v / s where s > 0).
  mul_rows(a, rows, cols, s, v, u);
  h.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) h[r] = static_cast<float>(u[r]);
  fit_g(a, nullptr, h, g, rows, cols);
  balance(h, g);
}

SignFit fit_signs(const Tensor& w, SignCode code, const float* importance, const OneBitOptions& opt) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "onebit needs a 2-D f32 matrix");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<float> a(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i) {
    SHRINK_CHECK(std::isfinite(w.f32()[i]), "onebit: non-finite weight at (", i / cols, ", ", i % cols, ")");
    a[i] = std::fabs(w.f32()[i]);
  }
  SignFit f;
  rank1_fit(a.data(), rows, cols, importance, opt.power_iters, f.h, f.g);
  std::vector<uint8_t> z;
  if (code == SignCode::Ternary) refine_ternary(a.data(), rows, cols, column_weights(importance, cols),
                                                opt.ternary_rounds, f.h, f.g, z);
  // Store-exact scales: h in f16, g refitted to it, then g in f16, then the mask for those.
  for (float& v : f.h) v = round_f16(v);
  fit_g(a.data(), z.empty() ? nullptr : z.data(), f.h, f.g, rows, cols);
  for (float& v : f.g) v = round_f16(v);
  if (!z.empty()) update_mask(a.data(), f.h, f.g, z, rows, cols);
  f.signs.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i)
    f.signs[i] = static_cast<int8_t>((z.empty() || z[i]) ? (w.f32()[i] >= 0 ? 1 : -1) : 0);
  return f;
}

std::shared_ptr<SignWeight> onebit_quantize(const Tensor& w, SignCode code, const float* importance,
                                            const OneBitOptions& opt) {
  const SignFit f = fit_signs(w, code, importance, opt);
  return std::make_shared<SignWeight>(code, w.dim(0), w.dim(1), f.signs.data(), f.h.data(), f.g.data());
}

double weighted_sq_error(const Tensor& w, const Tensor& q, const float* importance) {
  SHRINK_CHECK(w.numel() == q.numel() && w.ndim() == 2, "weighted_sq_error: shape mismatch");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  double e = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double d = double(w.f32()[r * cols + c]) - q.f32()[r * cols + c];
      e += (importance ? importance[c] : 1.0) * d * d;
    }
  return e;
}

// ------------------------------------------------------------ GPTQ columns

namespace {

class SignColumnQuantizer : public ColumnQuantizer {
 public:
  SignColumnQuantizer(SignCode code, int64_t rows, int64_t cols)
      : code_(code), signs_(static_cast<size_t>(rows * cols)), g_(static_cast<size_t>(cols)) {
    rows_ = rows, cols_ = cols, chunk_ = cols;
  }
  void choose(const float* wt, int64_t c0, const float* importance) override {
    SHRINK_CHECK(c0 == 0, "onebit: one chunk per row, got a chunk at column ", c0);
    Tensor w = Tensor::alloc(DType::F32, {rows_, cols_});
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t c = 0; c < cols_; ++c) w.f32()[r * cols_ + c] = wt[c * rows_ + r];
    SignFit f = fit_signs(w, code_, importance);
    h_ = std::move(f.h), g_ = std::move(f.g);
  }
  void round_column(int64_t c, const float* w, float* q) override {
    SHRINK_CHECK(!h_.empty(), "onebit: round_column before choose");
    std::vector<uint8_t> keep(static_cast<size_t>(rows_), 1);
    float gc = code_ == SignCode::Binary ? fit_column(w, keep, 0.0f) : g_[c];
    if (code_ == SignCode::Ternary) {
      for (int i = 0; i < 4; ++i) gc = fit_column(w, mask_column(w, gc, keep), gc);
      gc = round_f16(gc);
      mask_column(w, gc, keep);
    }
    g_[c] = gc;
    for (int64_t r = 0; r < rows_; ++r) {
      const int s = keep[r] ? (w[r] >= 0 ? 1 : -1) : 0;
      signs_[r * cols_ + c] = static_cast<int8_t>(s);
      q[r] = s * (h_[r] * gc);  // exactly SignWeight::to_dense_f32's value
    }
  }
  std::shared_ptr<WeightRepr> finish() override {
    return std::make_shared<SignWeight>(code_, rows_, cols_, signs_.data(), h_.data(), g_.data());
  }

 private:
  // Least-squares g of this column given h on the kept rows (f16-rounded for
  // onebit, whose g is final here); `fallback` when no row is kept.
  float fit_column(const float* w, const std::vector<uint8_t>& keep, float fallback) const {
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows_; ++r)
      if (keep[r]) num += double(h_[r]) * std::fabs(w[r]), den += double(h_[r]) * h_[r];
    const float g = den > 0 ? static_cast<float>(num / den) : fallback;
    return code_ == SignCode::Binary ? round_f16(g) : g;
  }
  const std::vector<uint8_t>& mask_column(const float* w, float gc, std::vector<uint8_t>& keep) const {
    for (int64_t r = 0; r < rows_; ++r) keep[r] = std::fabs(w[r]) > 0.5f * h_[r] * gc;
    return keep;
  }

  SignCode code_;
  std::vector<int8_t> signs_;
  std::vector<float> h_, g_;
};

}  // namespace

std::unique_ptr<ColumnQuantizer> make_sign_column_quantizer(SignCode code, int64_t rows, int64_t cols) {
  return std::make_unique<SignColumnQuantizer>(code, rows, cols);
}

}  // namespace shrink::quant
