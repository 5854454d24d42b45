#include "model/int8_weight.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace shrink {

Int8Weight::Int8Weight(const Tensor& w, Int8Activations act)
    : rows_(w.dim(0)), cols_(w.dim(1)), act_(act), q_(size_t(rows_ * cols_)), scale_(size_t(rows_)),
      row_sum_(size_t(rows_)) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "Int8Weight needs a 2-D f32 matrix");
  SHRINK_CHECK(cols_ <= kernels::kInt8MaxCols, "Int8Weight: ", cols_, " input features exceed the int32-exact limit");
  SHRINK_CHECK(act.static_scale >= 0 && std::isfinite(act.static_scale), "Int8Weight: bad activation scale ",
               act.static_scale);
  SHRINK_CHECK(act.static_scale == 0 || act.outlier_threshold == 0,
               "Int8Weight: LLM.int8() decomposition runs with per-token activation scales");
  kernels::quantize_weight_s8(w.f32(), rows_, cols_, q_.data(), scale_.data(), row_sum_.data());
}

int64_t Int8Weight::bytes() const {
  return rows_ * cols_ + rows_ * int64_t(sizeof(float) + sizeof(int32_t));  // codes, scales, row sums
}

std::string Int8Weight::kind() const {
  if (act_.outlier_threshold > 0) return "llm.int8";
  return act_.static_scale > 0 ? "w8a8 static" : "w8a8 per-token";
}

Tensor Int8Weight::to_dense_f32() const {
  Tensor t = Tensor::alloc(DType::F32, {rows_, cols_});
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t c = 0; c < cols_; ++c) t.f32()[r * cols_ + c] = float(q_[r * cols_ + c]) * scale_[r];
  return t;
}

void Int8Weight::matmul(const float* x, float* y, int64_t n) const {
  if (act_.outlier_threshold > 0) return matmul_with_outliers(x, y, n);
  kernels::int8_linear(view(), x, act_.static_scale, nullptr, y, n);
}

// The columns with an outlier anywhere in this batch go through f32; the rest
// through the int8 product with per-token scales.
void Int8Weight::matmul_with_outliers(const float* x, float* y, int64_t n) const {
  std::vector<int64_t> outl;
  for (int64_t c = 0; c < cols_; ++c)
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(x[i * cols_ + c]) >= act_.outlier_threshold) {
        outl.push_back(c);
        break;
      }
  if (outl.empty()) return kernels::int8_linear(view(), x, 0, nullptr, y, n);
  std::vector<float> xr(x, x + n * cols_);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c : outl) xr[size_t(i * cols_ + c)] = 0;
  kernels::int8_linear(view(), xr.data(), 0, nullptr, y, n);
#pragma omp parallel for schedule(static) if (rows_ * int64_t(outl.size()) * n > (1 << 16))
  for (int64_t r = 0; r < rows_; ++r) {
    const int8_t* q = q_.data() + r * cols_;
    for (int64_t i = 0; i < n; ++i) {
      float s = 0;
      for (int64_t c : outl) s += x[i * cols_ + c] * float(q[c]);
      y[i * rows_ + r] += s * scale_[r];
    }
  }
}

}  // namespace shrink
