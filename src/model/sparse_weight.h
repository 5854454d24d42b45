// SparseNmWeight: a Linear weight pruned to an N:M pattern (at most N
// non-zeros in every M consecutive columns of a row: 2:4, 4:8; M <= 16),
// stored compressed: only the kept values (f32 or bf16) and each one's
// position in its group (2 or 4 bits), as laid out in kernels/sparse_nm.h.
// The product reads only those bytes (2:4 bf16: 0.5625 of dense bf16), which
// is what makes a pruned model faster to decode (docs/pruning.md).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "kernels/sparse_nm.h"
#include "model/linear.h"

namespace shrink {

class SparseNmWeight : public WeightRepr {
 public:
  // values {rows, values_per_row} (F32 or BF16), indices {rows, index_words_per_row} (I32 holding
  // the packed uint32 words), as kernels/sparse_nm.h lays them out; checked.
  SparseNmWeight(kernels::NmShape shape, Tensor values, Tensor indices);
  // Compresses a dense weight {out, in} that obeys n:m (throws naming the first group with more
  // than n non-zeros). Values are stored as vtype (F32 or BF16; BF16 rounds f32 weights).
  static std::shared_ptr<SparseNmWeight> compress(const Tensor& w, int n, int m, DType vtype);

  int64_t out_features() const override { return shape_.rows; }
  int64_t in_features() const override { return shape_.cols; }
  void matmul(const float* x, float* y, int64_t n) const override;
  int64_t bytes() const override { return values_.nbytes() + indices_.nbytes(); }
  std::string kind() const override;  // "2:4 f32"
  Tensor to_dense_f32() const override;

  const kernels::NmShape& shape() const { return shape_; }
  const Tensor& values() const { return values_; }
  const Tensor& indices() const { return indices_; }
  DType value_type() const { return values_.dtype; }

 private:
  const uint32_t* idx() const { return static_cast<const uint32_t*>(indices_.data); }

  kernels::NmShape shape_;
  Tensor values_, indices_;
};

// File convention (docs/pruning.md): a compressed N:M Linear BASE is stored as
// BASE.weight.nm_val (values), BASE.weight.nm_idx (I32 index words) and
// BASE.weight.nm_meta (I32 {3}: N, M, in_features) in place of BASE.weight.
inline std::string sparse_values_name(const std::string& base) { return base + ".weight.nm_val"; }
inline std::string sparse_index_name(const std::string& base) { return base + ".weight.nm_idx"; }
inline std::string sparse_meta_name(const std::string& base) { return base + ".weight.nm_meta"; }

// The weight of BASE from those three tensors (any may be missing: throws).
std::shared_ptr<SparseNmWeight> sparse_weight_from_tensors(const Tensor& values, const Tensor& indices,
                                                           const Tensor& meta, const std::string& what);
// meta tensor of a weight (N, M, in_features).
Tensor sparse_meta_tensor(const kernels::NmShape& s);

}  // namespace shrink

namespace shrink {
class Transformer;
// Replaces every block Linear (not the output head) whose dense weight obeys n:m by a
// SparseNmWeight (values f32 for f32/f16 weights, bf16 for bf16; `vtype` F32/BF16 forces
// one); throws naming the first Linear that does not obey the pattern (a dense or
// unpruned model). Returns how many Linears were compressed.
int compress_model_nm(Transformer& model, int n, int m, DType vtype = DType::I8 /* = by weight dtype */);
}  // namespace shrink
