// GroupQuantWeight: shrink's general group-quantized matrix (compress/quant/
// spec.h) for the methods and bit widths ggml's block types cannot hold.
// Codes are packed as compressed-tensors' "pack-quantized" format packs them:
// each row is int32 words of 32/bits codes, code i of a word in bits
// [bits*i, bits*(i+1)), so a file written from this needs no repacking.
// Group g of row r: value = scale[r, g] * (level(code) - zero[r, g]).
// Products run on the packed codes (kernels/group_gemv.h). Integer codes are
// saved to and loaded from HF directories as compressed-tensors tensors
// (io/compressed_tensors.h): group_weight_to_file / group_weight_from_file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compress/quant/spec.h"
#include "io/model_file.h"
#include "kernels/group_gemv.h"
#include "model/linear.h"

namespace shrink {

class GroupQuantWeight : public WeightRepr {
 public:
  // codes: rows x cols codes, row-major; scale/zero: rows x n_groups (or 1 x 1 per tensor).
  GroupQuantWeight(const quant::QuantSpec& spec, int64_t rows, int64_t cols, const std::vector<uint8_t>& codes,
                   std::vector<float> scale, std::vector<float> zero);
  // From codes already packed: an I32 tensor of rows x words_per_row words, e.g. a file's
  // weight_packed, kept as it is (an mmap'd file's pages are read in place, not copied).
  GroupQuantWeight(const quant::QuantSpec& spec, int64_t rows, int64_t cols, Tensor packed, std::vector<float> scale,
                   std::vector<float> zero);

  int64_t out_features() const override { return rows_; }
  int64_t in_features() const override { return cols_; }
  void matmul(const float* x, float* y, int64_t n) const override;
  int64_t bytes() const override;
  std::string kind() const override { return spec_.name(); }
  Tensor to_dense_f32() const override;

  const quant::QuantSpec& spec() const { return spec_; }
  int64_t n_groups() const { return group_len_ == cols_ ? 1 : (cols_ + group_len_ - 1) / group_len_; }
  int64_t words_per_row() const { return words_per_row_; }
  const uint32_t* packed() const { return packed_.ptr<const uint32_t>(); }  // rows x words_per_row
  const std::vector<float>& scales() const { return scale_; }
  const std::vector<float>& zeros() const { return zero_; }
  uint8_t code(int64_t r, int64_t c) const;
  // Row r as f32 values.
  void dequantize_row(int64_t r, float* out) const;
  // The matrix as the group kernels see it (valid while this object lives).
  kernels::GroupQuantView view() const;

 private:
  quant::QuantSpec spec_;
  quant::Codebook codebook_;
  int64_t rows_, cols_, group_len_, per_word_, words_per_row_;
  Tensor packed_;  // I32 {rows, words_per_row}: heap, or the model file's mmap
  std::vector<float> scale_, zero_;
  std::vector<float> levels_;  // code values of float codebooks; empty for integer codes
  bool has_zero_ = true;       // some zero point is not 0 (float codebooks have none)
};

// The pack-quantized scheme of a spec; throws naming `what` for float
// codebooks (NF4, FP4, FP8), which pack-quantized cannot hold.
PackedScheme packed_scheme_of(const quant::QuantSpec& spec, const std::string& what);
// Writes g into m as linear `base` ("blk.0.attn_q", "output"): the
// compressed-tensors tensors replace base.weight, m.packed[base] is set.
// Throws when g has no pack-quantized form (float codes, zero points that are
// not integers in 0..2^bits-1, symmetric zeros other than 2^(bits-1)).
void group_weight_to_file(const GroupQuantWeight& g, const std::string& base, ModelFile& m);
// The packed linear `base` of m (listed in m.packed) as a GroupQuantWeight.
std::shared_ptr<GroupQuantWeight> group_weight_from_file(const ModelFile& m, const std::string& base);

}  // namespace shrink
