// QuantTarget: what a weight is quantized into — a ggml block type (written
// bit-exact into GGUF, run by the block kernels), one of shrink's general
// group formats (QuantSpec, GroupQuantWeight), or a OneBit sign format
// (compress/quant/onebit.h, SignWeight). Every method (RTN, imatrix,
// GPTQ, AWQ) produces either through the same two entry points:
//   quantize_matrix   whole-matrix round-to-nearest (optionally importance-weighted)
//   ColumnQuantizer   fix a chunk's scales, then round one column at a time
//                     (GPTQ's error feedback needs that)
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compress/quant/spec.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "model/linear.h"

namespace shrink::quant {

struct QuantTarget {
  bool is_block = false;
  DType block = DType::F32;  // when is_block
  QuantSpec spec;            // otherwise, unless sign is set
  // OneBit formats: "onebit" (S in {-1,+1}) or "ternary" ({-1,0,+1}), with rank-1 f16 scales.
  enum class Sign : uint8_t { None, OneBit, Ternary };
  Sign sign = Sign::None;    // when set, is_block is false and spec is unused

  // "q4_k", "Q8_0", ... (a ggml type) or a QuantSpec name ("int4g128", "nf4g64", ...);
  // also "f16"/"bf16"/"f32" (dense: leaves weights unquantized in that type),
  // and "onebit" / "ternary".
  static QuantTarget parse(const std::string& s);
  static QuantTarget of_block(DType t);
  bool is_dense() const { return is_block && !is_block_quantized(block); }
  bool is_sign() const { return sign != Sign::None; }
  std::string name() const;
  // Whether rows of `cols` values can be stored in this target.
  bool fits(int64_t cols) const;
  // Columns whose scales are fixed together (a block, a group, or a whole row).
  int64_t chunk(int64_t cols) const;
};

// The ggml type llama.cpp falls back to when rows do not split into blocks of
// t (llama-quantize's fallback: Q2_K/Q3_K -> IQ4_NL, Q4_K -> Q5_0, Q5_K ->
// Q5_1, Q6_K -> Q8_0), then F16 when no block type fits at all.
DType fallback_block_type(DType t, int64_t cols);
// t itself, or for a block target whose blocks do not split rows of `cols`, its fallback.
QuantTarget fit_target(const QuantTarget& t, int64_t cols);

// Round-to-nearest quantization of W (f32 {rows, cols}). importance: per
// column (nullable), as llama.cpp's imatrix. Block targets call ggml's
// quantizers (quantize_rows); dense targets convert.
std::shared_ptr<WeightRepr> quantize_matrix(const QuantTarget& t, const Tensor& w, const float* importance);

// Column-at-a-time quantization of a rows x cols matrix held column-major
// (wt[c * rows + r]), for GPTQ.
class ColumnQuantizer {
 public:
  virtual ~ColumnQuantizer() = default;
  static std::unique_ptr<ColumnQuantizer> make(const QuantTarget& t, int64_t rows, int64_t cols);
  int64_t chunk() const { return chunk_; }
  // Fixes the scales of columns [c0, c0 + chunk()) from their current values
  // (importance: per column, nullable, indexed like the columns).
  virtual void choose(const float* wt, int64_t c0, const float* importance) = 0;
  // Rounds column c (w: its rows values) to the grid fixed by choose(); writes
  // the dequantized values to q and remembers the codes.
  virtual void round_column(int64_t c, const float* w, float* q) = 0;
  // The quantized matrix, once every column has been rounded.
  virtual std::shared_ptr<WeightRepr> finish() = 0;

 protected:
  int64_t rows_ = 0, cols_ = 0, chunk_ = 0;
};

}  // namespace shrink::quant
