#include "model/group_weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace shrink {

GroupQuantWeight::GroupQuantWeight(const quant::QuantSpec& spec, int64_t rows, int64_t cols,
                                   const std::vector<uint8_t>& codes, std::vector<float> scale,
                                   std::vector<float> zero)
    : GroupQuantWeight(spec, rows, cols, Tensor::zeros(DType::I32, {rows, (cols + 32 / spec.bits - 1) / (32 / spec.bits)}),
                       std::move(scale), std::move(zero)) {
  SHRINK_CHECK(int64_t(codes.size()) == rows * cols, "group weight: ", codes.size(), " codes for ", rows, "x", cols);
  auto* words = packed_.ptr<uint32_t>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      words[r * words_per_row_ + c / per_word_] |= uint32_t(codes[r * cols + c]) << (spec.bits * (c % per_word_));
}

GroupQuantWeight::GroupQuantWeight(const quant::QuantSpec& spec, int64_t rows, int64_t cols,
                                   Tensor packed, std::vector<float> scale, std::vector<float> zero)
    : spec_(spec),
      codebook_(spec),
      rows_(rows),
      cols_(cols),
      group_len_(spec.group_len(cols)),
      per_word_(32 / spec.bits),
      words_per_row_((cols + per_word_ - 1) / per_word_),
      packed_(std::move(packed)),
      scale_(std::move(scale)),
      zero_(std::move(zero)) {
  SHRINK_CHECK(rows >= 0 && cols > 0, "group weight: bad shape ", rows, "x", cols);
  const int64_t params = spec.group == -1 ? 1 : rows * n_groups();
  SHRINK_CHECK(int64_t(scale_.size()) == params && int64_t(zero_.size()) == params, "group weight: ", scale_.size(),
               " scales for ", params, " groups");
  SHRINK_CHECK(packed_.dtype == DType::I32 && packed_.numel() == rows * words_per_row_,
               "group weight: ", dtype_name(packed_.dtype), " ", shape_str(packed_.shape), " packed words for ", rows,
               " rows of ", words_per_row_);
  has_zero_ = std::any_of(zero_.begin(), zero_.end(), [](float z) { return z != 0.0f; });
  if (spec.code != quant::Code::Int) {
    // The kernels look codes up in a table of 2^bits entries.
    levels_.assign(size_t(1) << spec.bits, 0.0f);
    for (int q = 0; q < codebook_.levels(); ++q) levels_[q] = codebook_.decode(uint8_t(q), {1.0f, 0.0f});
  }
}

int64_t GroupQuantWeight::bytes() const {
  // Packed codes plus f16 scales (and zeros when asymmetric), as stored in a file.
  const int64_t params = int64_t(scale_.size()) * 2 * ((spec_.code == quant::Code::Int && !spec_.symmetric) ? 2 : 1);
  return packed_.nbytes() + params;
}

uint8_t GroupQuantWeight::code(int64_t r, int64_t c) const {
  const uint32_t w = packed()[r * words_per_row_ + c / per_word_];
  return static_cast<uint8_t>((w >> (spec_.bits * (c % per_word_))) & ((1u << spec_.bits) - 1));
}

kernels::GroupQuantView GroupQuantWeight::view() const {
  kernels::GroupQuantView v;
  v.packed = packed();
  v.scale = scale_.data();
  v.zero = has_zero_ ? zero_.data() : nullptr;  // float codebooks: no correction term
  v.levels = levels_.empty() ? nullptr : levels_.data();
  v.bits = spec_.bits;
  v.rows = rows_;
  v.cols = cols_;
  v.group_len = group_len_;
  v.per_tensor = spec_.group == -1;
  return v;
}

void GroupQuantWeight::dequantize_row(int64_t r, float* out) const { kernels::group_dequantize_row(view(), r, out); }

Tensor GroupQuantWeight::to_dense_f32() const {
  Tensor t = Tensor::alloc(DType::F32, {rows_, cols_});
  const kernels::GroupQuantView v = view();
#pragma omp parallel for
  for (int64_t r = 0; r < rows_; ++r) kernels::group_dequantize_row(v, r, t.f32() + r * cols_);
  return t;
}

// Packed-code kernels, or dequantized panels through oneDNN for large n
// (kernels/group_gemv.h). Decode (n = 1) reads every weight once per token
// and takes the int8-activation kernels where they exist (2/4/8-bit integer
// codes), as llama.cpp's quantized dots do; small batches reuse each decoded
// code for every input, which keeps the exact f32-activation kernel
// affordable, and n >= 16 is exact through sgemm anyway.
void GroupQuantWeight::matmul(const float* x, float* y, int64_t n) const {
  kernels::GroupQuantView v = view();
  v.exact = n > 1;
  kernels::group_matmul(v, x, y, n);
}

// ---------------------------------------------------------------- compressed-tensors

PackedScheme packed_scheme_of(const quant::QuantSpec& spec, const std::string& what) {
  SHRINK_CHECK(spec.code == quant::Code::Int, what, ": ", spec.name(),
               " uses float codes, which compressed-tensors pack-quantized cannot hold (integer codes only); "
               "write a GGUF or dense model instead");
  return PackedScheme{spec.bits, spec.group, spec.symmetric};
}

void group_weight_to_file(const GroupQuantWeight& g, const std::string& base, ModelFile& m) {
  const PackedScheme s = packed_scheme_of(g.spec(), base);
  const int64_t rows = g.out_features(), cols = g.in_features();
  const std::vector<int64_t> pshape =
      s.group == -1 ? std::vector<int64_t>{1} : std::vector<int64_t>{rows, g.n_groups()};
  Tensor packed = Tensor::alloc(DType::I32, {rows, g.words_per_row()});
  std::memcpy(packed.data, g.packed(), size_t(packed.nbytes()));
  Tensor scale = Tensor::alloc(DType::F32, pshape);
  std::copy(g.scales().begin(), g.scales().end(), scale.f32());
  Tensor shape = Tensor::alloc(DType::I64, {2});
  shape.ptr<int64_t>()[0] = rows, shape.ptr<int64_t>()[1] = cols;
  const float offset = float(1 << (s.bits - 1)), maxq = float((1 << s.bits) - 1);
  Tensor zero;
  if (!s.symmetric) zero = Tensor::alloc(DType::I32, pshape);
  for (size_t i = 0; i < g.zeros().size(); ++i) {
    const float z = g.zeros()[i];
    if (s.symmetric) {
      SHRINK_CHECK(z == offset, base, ": symmetric ", g.spec().name(), " has zero point ", z, ", but ",
                   "compressed-tensors' symmetric codes are centred on ", offset);
    } else {
      SHRINK_CHECK(z >= 0 && z <= maxq && z == std::nearbyint(z), base, ": zero point ", z,
                   " is not an integer in 0..", maxq, ", which pack-quantized needs");
      zero.ptr<int32_t>()[i] = static_cast<int32_t>(z);
    }
  }
  m.tensors.erase(base + ".weight");
  for (const char* suffix : kPackedSuffixes) m.tensors.erase(base + "." + suffix);
  m.tensors[base + ".weight_packed"] = std::move(packed);
  m.tensors[base + ".weight_scale"] = std::move(scale);
  m.tensors[base + ".weight_shape"] = std::move(shape);
  if (!s.symmetric) m.tensors[base + ".weight_zero_point"] = std::move(zero);
  m.packed[base] = s;
}

std::shared_ptr<GroupQuantWeight> group_weight_from_file(const ModelFile& m, const std::string& base) {
  const auto it = m.packed.find(base);
  SHRINK_CHECK(it != m.packed.end(), m.path, ": '", base, "' is not a packed linear");
  const PackedScheme& s = it->second;
  const std::vector<int64_t> shape = check_packed_linear(m.tensors, base, s, m.path);
  quant::QuantSpec spec;
  spec.bits = s.bits;
  spec.group = s.group;
  spec.symmetric = s.symmetric;
  const Tensor scale = m.get(base + ".weight_scale").to(DType::F32);
  std::vector<float> sc(scale.f32(), scale.f32() + scale.numel());
  std::vector<float> zero(sc.size(), float(1 << (s.bits - 1)));
  if (!s.symmetric) {
    const Tensor& z = m.get(base + ".weight_zero_point");
    for (size_t i = 0; i < zero.size(); ++i) zero[i] = float(z.ptr<const int32_t>()[i]);
  }
  return std::make_shared<GroupQuantWeight>(spec, shape[0], shape[1], m.get(base + ".weight_packed"), std::move(sc),
                                            std::move(zero));
}

}  // namespace shrink
