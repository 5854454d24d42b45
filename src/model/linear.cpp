#include "model/linear.h"

#include "core/error.h"
#include "kernels/gemv.h"
#include "kernels/ops.h"

namespace shrink {

DenseWeight::DenseWeight(Tensor w) : w_(std::move(w)) {
  SHRINK_CHECK(w_.ndim() == 2, "a dense weight must be 2-D, got ", shape_str(w_.shape));
  SHRINK_CHECK(w_.dtype == DType::F32 || w_.dtype == DType::F16 || w_.dtype == DType::BF16,
               "dense weights must be f32, f16 or bf16, got ", dtype_name(w_.dtype));
}

void DenseWeight::matmul(const float* x, float* y, int64_t n) const {
  kernels::matmul(w_.dtype, w_.data, x, y, n, w_.dim(0), w_.dim(1));
}

std::string DenseWeight::kind() const { return std::string(dtype_name(w_.dtype)); }

Linear::Linear(std::string name, std::shared_ptr<WeightRepr> weight, Tensor bias)
    : name_(std::move(name)), weight_(std::move(weight)), bias_(std::move(bias)) {
  SHRINK_CHECK(weight_, name_, ": Linear without a weight");
  if (!bias_.empty())
    SHRINK_CHECK(bias_.dtype == DType::F32 && bias_.numel() == weight_->out_features(), name_, ": bias of shape ",
                 shape_str(bias_.shape), " does not match ", weight_->out_features(), " outputs");
}

Linear Linear::dense(std::string name, Tensor weight, const Tensor* bias) {
  Tensor b;
  if (bias) b = bias->dtype == DType::F32 ? *bias : bias->to(DType::F32);
  return Linear(std::move(name), std::make_shared<DenseWeight>(std::move(weight)), std::move(b));
}

void Linear::forward(const float* x, float* y, int64_t n) const {
  weight_->matmul(x, y, n);
  if (!bias_.empty()) kernels::add_bias(y, bias_.f32(), n, out_features());
}

}  // namespace shrink
