#include "model/sign_weight.h"

#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/gemv.h"

namespace shrink {

using kernels::SignCode;

SignWeight::SignWeight(SignCode code, int64_t rows, int64_t cols, const int8_t* signs, const float* h, const float* g)
    : code_(code), rows_(rows), cols_(cols), row_words_(kernels::sign_row_words(code, cols)) {
  SHRINK_CHECK(rows > 0 && cols > 0, "sign weight: bad shape ", rows, "x", cols);
  planes_.assign(static_cast<size_t>(rows * row_words_), 0);
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t* w = planes_.data() + r * row_words_;
    for (int64_t c = 0; c < cols; ++c) {
      const int s = signs[r * cols + c];
      const uint64_t b = uint64_t{1} << (c % 64);
      if (code == SignCode::Binary) {
        SHRINK_CHECK(s == 1 || s == -1, "onebit weight: sign ", s, " at (", r, ", ", c, ") is not +-1");
        if (s > 0) w[c / 64] |= b;
      } else {
        SHRINK_CHECK(s >= -1 && s <= 1, "ternary weight: value ", s, " at (", r, ", ", c, ") is not -1/0/+1");
        if (s != 0) w[2 * (c / 64) + (s < 0)] |= b;
      }
    }
  }
  h_.resize(static_cast<size_t>(rows)), g_.resize(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    SHRINK_CHECK(std::isfinite(h[r]), "sign weight: non-finite row scale at ", r);
    h_[r] = f32_to_f16(h[r]);
  }
  for (int64_t c = 0; c < cols; ++c) {
    SHRINK_CHECK(std::isfinite(g[c]), "sign weight: non-finite column scale at ", c);
    g_[c] = f32_to_f16(g[c]);
  }
}

float SignWeight::h(int64_t r) const { return f16_to_f32(h_[r]); }
float SignWeight::g(int64_t c) const { return f16_to_f32(g_[c]); }

int SignWeight::sign(int64_t r, int64_t c) const {
  const uint64_t* w = planes_.data() + r * row_words_;
  const int sh = static_cast<int>(c % 64);
  if (code_ == SignCode::Binary) return (w[c / 64] >> sh) & 1 ? 1 : -1;
  return int((w[2 * (c / 64)] >> sh) & 1) - int((w[2 * (c / 64) + 1] >> sh) & 1);
}

Tensor SignWeight::to_dense_f32() const {
  Tensor t = Tensor::alloc(DType::F32, {rows_, cols_});
  kernels::sign_unpack(code_, planes_.data(), t.f32(), rows_, cols_);
  std::vector<float> hf(static_cast<size_t>(rows_)), gf(static_cast<size_t>(cols_));
  kernels::widen_to_f32(DType::F16, h_.data(), hf.data(), rows_);
  kernels::widen_to_f32(DType::F16, g_.data(), gf.data(), cols_);
#pragma omp parallel for if (rows_ * cols_ > (1 << 16))
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t c = 0; c < cols_; ++c) t.f32()[r * cols_ + c] *= hf[r] * gf[c];
  return t;
}

// y = h * (S (g * x)) for each token: the scales are widened from f16 per
// call (rows + cols values, nothing next to the rows x cols product), so the
// forward reads exactly what bytes() counts.
void SignWeight::matmul(const float* x, float* y, int64_t n) const {
  if (n <= 0) return;
  std::vector<float> hf(static_cast<size_t>(rows_)), gf(static_cast<size_t>(cols_));
  kernels::widen_to_f32(DType::F16, h_.data(), hf.data(), rows_);
  kernels::widen_to_f32(DType::F16, g_.data(), gf.data(), cols_);
  std::vector<float> xs(static_cast<size_t>(n * cols_));
#pragma omp parallel for if (n * cols_ > (1 << 16))
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < cols_; ++c) xs[t * cols_ + c] = x[t * cols_ + c] * gf[c];
  kernels::sign_matmul(code_, planes_.data(), xs.data(), y, n, rows_, cols_);
#pragma omp parallel for if (n * rows_ > (1 << 16))
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows_; ++r) y[t * rows_ + r] *= hf[r];
}

}  // namespace shrink
