#include "model/int8_weight.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/model_file.h"

namespace shrink {

Int8Weight::Int8Weight(const Tensor& w, Int8Activations act)
    : rows_(w.dim(0)), cols_(w.dim(1)), act_(act), q_(size_t(rows_ * cols_)), scale_(size_t(rows_)),
      row_sum_(size_t(rows_)) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "Int8Weight needs a 2-D f32 matrix");
  check_activations();
  kernels::quantize_weight_s8(w.f32(), rows_, cols_, q_.data(), scale_.data(), row_sum_.data());
}

Int8Weight::Int8Weight(int64_t rows, int64_t cols, std::vector<int8_t> codes, std::vector<float> scales,
                       Int8Activations act)
    : rows_(rows), cols_(cols), act_(act), q_(std::move(codes)), scale_(std::move(scales)), row_sum_(size_t(rows)) {
  SHRINK_CHECK(rows > 0 && cols > 0 && int64_t(q_.size()) == rows * cols && int64_t(scale_.size()) == rows,
               "Int8Weight: ", q_.size(), " codes and ", scale_.size(), " scales for a ", rows, " x ", cols, " matrix");
  for (float s : scale_)
    SHRINK_CHECK(std::isfinite(s) && s >= 0, "Int8Weight: weight scale ", s, " is not a finite non-negative number");
  check_activations();
  kernels::int8_row_sums(q_.data(), rows_, cols_, row_sum_.data());
}

void Int8Weight::check_activations() const {
  SHRINK_CHECK(cols_ <= kernels::kInt8MaxCols, "Int8Weight: ", cols_, " input features exceed the int32-exact limit");
  SHRINK_CHECK(act_.static_scale >= 0 && std::isfinite(act_.static_scale), "Int8Weight: bad activation scale ",
               act_.static_scale);
  SHRINK_CHECK(act_.outlier_threshold >= 0 && std::isfinite(act_.outlier_threshold),
               "Int8Weight: bad outlier threshold ", act_.outlier_threshold);
  SHRINK_CHECK(act_.static_scale == 0 || act_.outlier_threshold == 0,
               "Int8Weight: LLM.int8() decomposition runs with per-token activation scales");
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

// ---------------------------------------------------------------- compressed-tensors int-quantized

void int8_weight_to_file(const Int8Weight& w, const std::string& base, ModelFile& m) {
  const int64_t rows = w.out_features(), cols = w.in_features();
  Tensor codes = Tensor::alloc(DType::I8, {rows, cols});
  std::copy(w.codes().begin(), w.codes().end(), codes.ptr<int8_t>());
  Tensor scale = Tensor::alloc(DType::F32, {rows, 1});  // strategy "channel": {out, 1}
  std::copy(w.scales().begin(), w.scales().end(), scale.f32());
  for (const char* suffix : kPackedSuffixes) m.tensors.erase(base + "." + suffix);
  m.packed.erase(base);
  m.tensors[base + ".weight"] = std::move(codes);
  m.tensors[base + ".weight_scale"] = std::move(scale);
  Int8Scheme s;
  s.static_input = w.activations().static_scale > 0;
  s.outlier_threshold = w.activations().outlier_threshold;
  if (s.static_input) {
    Tensor in = Tensor::alloc(DType::F32, {1});
    in.f32()[0] = w.activations().static_scale;
    m.tensors[base + ".input_scale"] = std::move(in);
  }
  m.int8[base] = s;
}

std::shared_ptr<Int8Weight> int8_weight_from_file(const ModelFile& m, const std::string& base) {
  const auto it = m.int8.find(base);
  SHRINK_CHECK(it != m.int8.end(), m.path, ": '", base, "' is not an int-quantized linear");
  const Int8Scheme& s = it->second;
  const std::vector<int64_t> shape = check_int8_linear(m.tensors, base, s, m.path);
  const Tensor& codes = m.get(base + ".weight");
  std::vector<int8_t> q(codes.ptr<const int8_t>(), codes.ptr<const int8_t>() + codes.numel());
  const Tensor scale = m.get(base + ".weight_scale").to(DType::F32);
  std::vector<float> sc(scale.f32(), scale.f32() + scale.numel());
  Int8Activations act;
  act.outlier_threshold = s.outlier_threshold;
  if (s.static_input) act.static_scale = m.get(base + ".input_scale").to(DType::F32).f32()[0];
  return std::make_shared<Int8Weight>(shape[0], shape[1], std::move(q), std::move(sc), act);
}

}  // namespace shrink
