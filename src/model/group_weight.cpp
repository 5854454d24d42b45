#include "model/group_weight.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/gemv.h"

namespace shrink {

GroupQuantWeight::GroupQuantWeight(const quant::QuantSpec& spec, int64_t rows, int64_t cols,
                                   const std::vector<uint8_t>& codes, std::vector<float> scale,
                                   std::vector<float> zero)
    : spec_(spec),
      codebook_(spec),
      rows_(rows),
      cols_(cols),
      group_len_(spec.group_len(cols)),
      per_word_(32 / spec.bits),
      words_per_row_((cols + per_word_ - 1) / per_word_),
      scale_(std::move(scale)),
      zero_(std::move(zero)) {
  SHRINK_CHECK(int64_t(codes.size()) == rows * cols, "group weight: ", codes.size(), " codes for ", rows, "x", cols);
  const int64_t params = spec.group == -1 ? 1 : rows * n_groups();
  SHRINK_CHECK(int64_t(scale_.size()) == params && int64_t(zero_.size()) == params, "group weight: ", scale_.size(),
               " scales for ", params, " groups");
  packed_.assign(size_t(rows * words_per_row_), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      packed_[r * words_per_row_ + c / per_word_] |= uint32_t(codes[r * cols + c]) << (spec.bits * (c % per_word_));
}

int64_t GroupQuantWeight::bytes() const {
  // Packed codes plus f16 scales (and zeros when asymmetric), as stored in a file.
  const int64_t params = int64_t(scale_.size()) * 2 * ((spec_.code == quant::Code::Int && !spec_.symmetric) ? 2 : 1);
  return int64_t(packed_.size()) * 4 + params;
}

uint8_t GroupQuantWeight::code(int64_t r, int64_t c) const {
  const uint32_t w = packed_[r * words_per_row_ + c / per_word_];
  return static_cast<uint8_t>((w >> (spec_.bits * (c % per_word_))) & ((1u << spec_.bits) - 1));
}

void GroupQuantWeight::dequantize_row(int64_t r, float* out) const {
  const uint32_t mask = (1u << spec_.bits) - 1;
  const uint32_t* words = packed_.data() + r * words_per_row_;
  for (int64_t c0 = 0; c0 < cols_; c0 += group_len_) {
    const int64_t g = spec_.group == -1 ? 0 : r * n_groups() + c0 / group_len_;
    const quant::GroupParams p{scale_[g], zero_[g]};
    for (int64_t c = c0; c < std::min(cols_, c0 + group_len_); ++c) {
      const uint8_t q = static_cast<uint8_t>((words[c / per_word_] >> (spec_.bits * (c % per_word_))) & mask);
      out[c] = codebook_.decode(q, p);
    }
  }
}

Tensor GroupQuantWeight::to_dense_f32() const {
  Tensor t = Tensor::alloc(DType::F32, {rows_, cols_});
#pragma omp parallel for
  for (int64_t r = 0; r < rows_; ++r) dequantize_row(r, t.f32() + r * cols_);
  return t;
}

// Reference-speed product: rows are widened to f32 in panels (in parallel)
// and multiplied by oneDNN. A packed-code kernel is future work; until then
// this representation's speed is not a figure to report.
void GroupQuantWeight::matmul(const float* x, float* y, int64_t n) const {
  const int64_t panel = std::max<int64_t>(8, (1 << 16) / std::max<int64_t>(cols_, 1));
  std::vector<float> wf(static_cast<size_t>(std::min(panel, rows_) * cols_)), yp(size_t(n * std::min(panel, rows_)));
  for (int64_t r0 = 0; r0 < rows_; r0 += panel) {
    const int64_t nr = std::min(panel, rows_ - r0);
#pragma omp parallel for
    for (int64_t r = 0; r < nr; ++r) dequantize_row(r0 + r, wf.data() + r * cols_);
    kernels::matmul(DType::F32, wf.data(), x, yp.data(), n, nr, cols_);
    for (int64_t t = 0; t < n; ++t) std::copy_n(yp.data() + t * nr, nr, y + t * rows_ + r0);
  }
}

}  // namespace shrink
