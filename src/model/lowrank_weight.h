// LowRankWeight: W ~= U V with U {out, r} and V {r, in}, the representation
// of truncated-SVD factorizations (plain SVD, ASVD, SVD-LLM: compress/lowrank).
// The product never forms W: y = (x V^T) U^T, two thin products through the
// dense kernels (kernels/gemv for decode, oneDNN for n > 1), reading
// r * (out + in) values instead of out * in. So it pays only when
// r < out * in / (out + in); the factorizer keeps a layer dense otherwise.
// U and V are f32 or bf16 (both the same dtype) and may point into a file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/linear.h"

namespace shrink {

class LowRankWeight : public WeightRepr {
 public:
  LowRankWeight(Tensor u, Tensor v);

  int64_t out_features() const override { return u_.dim(0); }
  int64_t in_features() const override { return v_.dim(1); }
  void matmul(const float* x, float* y, int64_t n) const override;
  int64_t bytes() const override { return u_.nbytes() + v_.nbytes(); }
  std::string kind() const override;  // "lowrank r=R f32"
  Tensor to_dense_f32() const override;  // U V

  int64_t rank() const { return u_.dim(1); }
  const Tensor& u() const { return u_; }
  const Tensor& v() const { return v_; }

 private:
  Tensor u_, v_;
};

// The largest rank whose factors hold fewer values than the dense {out, in}
// matrix: r * (out + in) < out * in. A rank above it saves nothing.
int64_t max_saving_rank(int64_t out, int64_t in);

// File convention (docs/lowrank.md): a factorized Linear BASE is stored as the
// tensors BASE.weight.lr_u {out, r} and BASE.weight.lr_v {r, in} in place of
// BASE.weight.
inline std::string lowrank_u_name(const std::string& base) { return base + ".weight.lr_u"; }
inline std::string lowrank_v_name(const std::string& base) { return base + ".weight.lr_v"; }

}  // namespace shrink
