// SparseMaskWeight: a Linear weight with many zeros (unstructured pruning,
// 60-90%) stored in the bitmask form of kernels/sparse_mask.h: per 16 columns
// a 16-bit mask of the non-zeros + those values (f32). At 70% zeros that is
// 0.33x the bytes of dense f32. In GGUF as three tensors (shrink's own
// convention, docs/pruning.md "Bitmask"); no Hugging Face form.
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

// File convention (docs/pruning.md): a bitmask Linear BASE is stored as
// BASE.weight.mask_bits (I16 {out, ceil(in / 16)}: the masks' bits),
// BASE.weight.mask_val (F32 {stored values}: all rows' values back to back) and
// BASE.weight.mask_meta (I32 {1}: in_features) in place of BASE.weight. Row
// offsets are not stored: they are the prefix sums of the masks' popcounts.
inline std::string mask_bits_name(const std::string& base) { return base + ".weight.mask_bits"; }
inline std::string mask_values_name(const std::string& base) { return base + ".weight.mask_val"; }
inline std::string mask_meta_name(const std::string& base) { return base + ".weight.mask_meta"; }

// The three tensors of a weight (copies; bits as I16 holding the uint16 masks).
Tensor mask_bits_tensor(const kernels::MaskMatrix& m);
Tensor mask_values_tensor(const kernels::MaskMatrix& m);
Tensor mask_meta_tensor(const kernels::MaskMatrix& m);
// The weight from those tensors, checked (dtypes, shapes, mask bits past in_features, popcount
// total = number of values): throws naming `what` on a corrupt or truncated set.
std::shared_ptr<SparseMaskWeight> mask_weight_from_tensors(const Tensor& bits, const Tensor& values, const Tensor& meta,
                                                           const std::string& what);
// The row offsets (rows + 1) of masks {rows, groups}: prefix sums of their popcounts.
std::vector<int64_t> mask_row_starts(const uint16_t* masks, int64_t rows, int64_t groups);

// Below this share of zeros a Linear stays dense in compress_model_mask: bytes break
// even at 1/32 = 3.1% zeros (1 mask bit per column against 32 bits per kept value),
// but the kernel only matches the dense f32 GEMV's speed at ~50% zeros
// (docs/pruning.md, `shrink_bench --benchmark_filter=Mask`), so below that a smaller
// file would decode slower.
constexpr double kMaskMinSparsity = 0.5;

class Transformer;
// Replaces every block Linear (not the output head) stored dense whose share of
// zeros is at least min_sparsity (and that has a non-zero) by its SparseMaskWeight;
// returns how many.
int compress_model_mask(Transformer& model, double min_sparsity = kMaskMinSparsity);

}  // namespace shrink
