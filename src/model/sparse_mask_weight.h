// SparseMaskWeight: a Linear weight with many zeros (unstructured pruning,
// 60-90%) stored in the bitmask form of kernels/sparse_mask.h: per 16 columns
// a 16-bit mask of the non-zeros + those values (f32). At 70% zeros that is
// 0.33x the bytes of dense f32. In memory only: no file format holds it yet
// (Transformer::export_to refuses it with an error naming the Linear, as for
// any kind without a tensor form; save the pruned model dense).
#pragma once
#include <memory>
#include <string>

#include "core/tensor.h"
#include "kernels/sparse_mask.h"
#include "model/linear.h"

namespace shrink {

class SparseMaskWeight : public WeightRepr {
 public:
  explicit SparseMaskWeight(kernels::MaskMatrix m) : m_(std::move(m)) {}
  // The bitmask form of a dense weight {out, in} (any float dtype; values kept as f32).
  static std::shared_ptr<SparseMaskWeight> compress(const Tensor& w);

  int64_t out_features() const override { return m_.rows; }
  int64_t in_features() const override { return m_.cols; }
  void matmul(const float* x, float* y, int64_t n) const override { kernels::mask_matmul(m_, x, y, n); }
  int64_t bytes() const override { return m_.bytes(); }
  std::string kind() const override { return "bitmask f32"; }
  Tensor to_dense_f32() const override;
  const kernels::MaskMatrix& matrix() const { return m_; }

 private:
  kernels::MaskMatrix m_;
};

class Transformer;
// Replaces every block Linear (not the output head) stored dense by its
// SparseMaskWeight; returns how many. Whether that pays depends on the
// sparsity (break-even with dense f32 at ~3% zeros in bytes; see the kernel's
// measured speed in docs/pruning.md).
int compress_model_mask(Transformer& model);

}  // namespace shrink
