// Linear: the unit of compression (DESIGN.md §2). A Linear owns its weight in
// one representation (a WeightRepr: dense f32/f16/bf16 today; block-quantized,
// group-quantized, sparse and low-rank ones arrive with the compression
// issues) plus an optional f32 bias, and computes y = x * W^T + b. The model
// forward only ever calls forward(); it never sees the representation.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace shrink {

// How a weight is stored and multiplied. W is logically {out, in}.
class WeightRepr {
 public:
  virtual ~WeightRepr() = default;
  virtual int64_t out_features() const = 0;
  virtual int64_t in_features() const = 0;
  // y[n x out] = x[n x in] * W^T
  virtual void matmul(const float* x, float* y, int64_t n) const = 0;
  virtual int64_t bytes() const = 0;        // storage the forward reads
  virtual std::string kind() const = 0;     // "f32", "bf16", "q4_0", "2:4 f32", ...
  virtual Tensor to_dense_f32() const = 0;  // for methods that need the plain matrix
};

// A dense matrix of dtype F32, F16 or BF16 (may point into an mmap'd file).
class DenseWeight : public WeightRepr {
 public:
  explicit DenseWeight(Tensor w);
  int64_t out_features() const override { return w_.dim(0); }
  int64_t in_features() const override { return w_.dim(1); }
  void matmul(const float* x, float* y, int64_t n) const override;
  int64_t bytes() const override { return w_.nbytes(); }
  std::string kind() const override;
  Tensor to_dense_f32() const override { return w_.to(DType::F32); }
  const Tensor& tensor() const { return w_; }

 private:
  Tensor w_;
};

// A ggml block-quantized matrix (Q8_0, Q4_K, ...: DType::is_block_quantized),
// rows of in/block_elems blocks, exactly as stored in GGUF (may point into an
// mmap'd file). With SHRINK_REPACK=1, on CPUs with AVX-512 VNNI, a Q4_0 or
// Q4_K weight also keeps a copy of its rows repacked in 16-row tiles
// (kernels/repack_x16.h), made at its first single-token product, which decode
// then reads: twice the compute rate from cache, decode within noise of the
// ggml layout, and the weight's size in RAM once more, so it is off by
// default (docs/quantization.md, "The repacked layout revisited").
class BlockWeight : public WeightRepr {
 public:
  explicit BlockWeight(Tensor w);
  int64_t out_features() const override { return w_.dim(0); }
  int64_t in_features() const override { return w_.dim(1); }
  void matmul(const float* x, float* y, int64_t n) const override;
  int64_t bytes() const override { return w_.nbytes(); }
  std::string kind() const override { return std::string(dtype_name(w_.dtype)); }
  Tensor to_dense_f32() const override { return w_.to(DType::F32); }
  const Tensor& tensor() const { return w_; }
  // Whether single-token products read the repacked copy (SHRINK_REPACK=1).
  bool decodes_repacked() const { return !repacked().empty(); }
  // The repacked rows (whole groups of 16), or empty when not used.
  const std::vector<uint8_t>& repacked() const;

 private:

  Tensor w_;
  mutable std::once_flag repack_once_;
  mutable std::vector<uint8_t> repacked_;
};

// DenseWeight or BlockWeight, by the tensor's dtype.
std::shared_ptr<WeightRepr> make_weight(Tensor w);

class Linear {
 public:
  Linear() = default;
  Linear(std::string name, std::shared_ptr<WeightRepr> weight, Tensor bias = {});
  // Weight from a tensor {out, in} (dense or block-quantized: make_weight);
  // the bias (if any) is converted to f32.
  static Linear dense(std::string name, Tensor weight, const Tensor* bias = nullptr);

  void forward(const float* x, float* y, int64_t n) const;
  int64_t in_features() const { return weight_->in_features(); }
  int64_t out_features() const { return weight_->out_features(); }
  int64_t bytes() const { return weight_->bytes() + bias_.nbytes() * !bias_.empty(); }
  const std::string& name() const { return name_; }
  const WeightRepr& weight() const { return *weight_; }
  const Tensor& bias() const { return bias_; }
  const std::shared_ptr<WeightRepr>& weight_ptr() const { return weight_; }
  void set_weight(std::shared_ptr<WeightRepr> w) { weight_ = std::move(w); }
  void set_bias(Tensor b) { bias_ = std::move(b); }
  bool valid() const { return weight_ != nullptr; }

 private:
  std::string name_;
  std::shared_ptr<WeightRepr> weight_;
  Tensor bias_;  // f32 {out} or empty
};

// ys[i] = x * W_i^T + b_i for Linears that read the same input (q/k/v, gate/up;
// all of one width). For one token, the block-quantized weights of each type
// and layout run as one kernel pass over all their rows (kernels::qgemv_parts,
// or kernels::x16_gemv_parts for repacked copies: the input quantized once,
// one fork/join); the others, and every Linear of a multi-token product, run
// forward() one by one. The results are the same either way.
void forward_shared_input(const std::vector<const Linear*>& ls, const float* x, const std::vector<float*>& ys, int64_t n);

// Called with the input of every Linear the forward runs (calibration:
// Hessians, activation statistics). Null = no hook.
using LinearInputHook = std::function<void(const Linear&, const float* x, int64_t n)>;

}  // namespace shrink
