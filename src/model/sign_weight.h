// SignWeight: a binary or ternary matrix with rank-1 scales, the weight
// representation of OneBit (Xu et al. 2024, "OneBit: Towards Extremely
// Low-bit Large Language Models", eq. 4-5):
//   W ~= diag(h) S diag(g),  S in {-1, +1} (onebit) or {-1, 0, +1} (ternary),
// h (out) and g (in) stored as f16 as the paper stores them. The product never
// widens W: y = h * (S (g * x)), with S (...) done on the packed bits by
// kernels/sign_gemv.h (1 bit per weight; ternary 2 bit-planes). The matrices
// are made by compress/quant/onebit.h.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/sign_gemv.h"
#include "model/linear.h"

namespace shrink {

class SignWeight : public WeightRepr {
 public:
  // signs: rows x cols row-major, each in {-1, +1} (Binary) or {-1, 0, +1}
  // (Ternary); h: rows, g: cols (rounded to f16 here: read them back with
  // h()/g() to use exactly the stored values).
  SignWeight(kernels::SignCode code, int64_t rows, int64_t cols, const int8_t* signs, const float* h, const float* g);

  int64_t out_features() const override { return rows_; }
  int64_t in_features() const override { return cols_; }
  void matmul(const float* x, float* y, int64_t n) const override;
  // The bit-planes (rows padded to 64 columns) plus f16 h and g: what a file would hold.
  int64_t bytes() const override { return int64_t(planes_.size()) * 8 + 2 * (rows_ + cols_); }
  std::string kind() const override { return code_ == kernels::SignCode::Ternary ? "ternary" : "onebit"; }
  Tensor to_dense_f32() const override;

  kernels::SignCode code() const { return code_; }
  float h(int64_t r) const;
  float g(int64_t c) const;
  int sign(int64_t r, int64_t c) const;  // S[r, c]
  const std::vector<uint64_t>& planes() const { return planes_; }

 private:
  kernels::SignCode code_;
  int64_t rows_, cols_, row_words_;
  std::vector<uint64_t> planes_;
  std::vector<uint16_t> h_, g_;  // f16
};

}  // namespace shrink
