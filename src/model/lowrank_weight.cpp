#include "model/lowrank_weight.h"

#include <dnnl.h>

#include <vector>

#include "core/error.h"
#include "kernels/gemv.h"

namespace shrink {

LowRankWeight::LowRankWeight(Tensor u, Tensor v) : u_(std::move(u)), v_(std::move(v)) {
  SHRINK_CHECK(u_.ndim() == 2 && v_.ndim() == 2, "low-rank factors must be 2-D, got U ", shape_str(u_.shape), " and V ",
               shape_str(v_.shape));
  SHRINK_CHECK(u_.dim(1) == v_.dim(0) && u_.dim(1) > 0, "low-rank factors do not chain: U ", shape_str(u_.shape),
               " times V ", shape_str(v_.shape));
  SHRINK_CHECK(u_.dtype == v_.dtype && (u_.dtype == DType::F32 || u_.dtype == DType::BF16),
               "low-rank factors must both be f32 or both bf16, got ", dtype_name(u_.dtype), " and ",
               dtype_name(v_.dtype));
}

std::string LowRankWeight::kind() const { return "lowrank r=" + std::to_string(rank()) + " " + std::string(dtype_name(u_.dtype)); }

// Two dense products through the same kernels a dense Linear uses; the rank-r
// intermediate is small (r floats per token), so a per-call buffer costs
// nothing next to the products.
void LowRankWeight::matmul(const float* x, float* y, int64_t n) const {
  if (n <= 0) return;
  const int64_t r = rank();
  std::vector<float> t(static_cast<size_t>(n * r));
  kernels::matmul(v_.dtype, v_.data, x, t.data(), n, r, in_features());
  kernels::matmul(u_.dtype, u_.data, t.data(), y, n, out_features(), r);
}

Tensor LowRankWeight::to_dense_f32() const {
  const Tensor u = u_.to(DType::F32), v = v_.to(DType::F32);
  const int64_t out = out_features(), in = in_features(), r = rank();
  Tensor w = Tensor::alloc(DType::F32, {out, in});
  const dnnl_status_t st = dnnl_sgemm('N', 'N', out, in, r, 1.0f, u.f32(), r, v.f32(), in, 0.0f, w.f32(), in);
  SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
  return w;
}

int64_t max_saving_rank(int64_t out, int64_t in) {
  if (out <= 0 || in <= 0) return 0;
  return (out * in - 1) / (out + in);  // largest r with r * (out + in) < out * in
}

}  // namespace shrink
