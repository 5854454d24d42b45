#include "model/sparse_mask_weight.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/error.h"
#include "model/transformer.h"

namespace shrink {

std::shared_ptr<SparseMaskWeight> SparseMaskWeight::compress(const Tensor& w) {
  SHRINK_CHECK(w.ndim() == 2, "bitmask compression needs a 2-D weight, got ", shape_str(w.shape));
  const Tensor wf = w.dtype == DType::F32 ? w : w.to(DType::F32);
  return std::make_shared<SparseMaskWeight>(kernels::mask_pack(wf.f32(), w.dim(0), w.dim(1)));
}

Tensor SparseMaskWeight::to_dense_f32() const {
  Tensor out = Tensor::alloc(DType::F32, {m_.rows, m_.cols});
  kernels::mask_unpack(m_, out.f32());
  return out;
}

// ------------------------------------------------------------------ file tensors

Tensor mask_bits_tensor(const kernels::MaskMatrix& m) {
  Tensor t = Tensor::alloc(DType::I16, {m.rows, m.groups()});
  std::memcpy(t.data, m.masks.data(), m.masks.size() * sizeof(uint16_t));
  return t;
}

Tensor mask_values_tensor(const kernels::MaskMatrix& m) {
  Tensor t = Tensor::alloc(DType::F32, {int64_t(m.values.size())});
  std::memcpy(t.data, m.values.data(), m.values.size() * sizeof(float));
  return t;
}

Tensor mask_meta_tensor(const kernels::MaskMatrix& m) {
  Tensor t = Tensor::alloc(DType::I32, {1});
  t.ptr<int32_t>()[0] = static_cast<int32_t>(m.cols);
  return t;
}

std::vector<int64_t> mask_row_starts(const uint16_t* masks, int64_t rows, int64_t groups) {
  std::vector<int64_t> starts(static_cast<size_t>(rows + 1), 0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t n = 0;
    for (int64_t g = 0; g < groups; ++g) n += std::popcount(masks[r * groups + g]);
    starts[r + 1] = starts[r] + n;
  }
  return starts;
}

std::shared_ptr<SparseMaskWeight> mask_weight_from_tensors(const Tensor& bits, const Tensor& values, const Tensor& meta,
                                                           const std::string& what) {
  SHRINK_CHECK(meta.dtype == DType::I32 && meta.numel() == 1, what, ": bitmask metadata must be 1 I32 value (in_features)");
  SHRINK_CHECK(bits.dtype == DType::I16 && bits.ndim() == 2, what, ": bitmask bits must be a 2-D I16 tensor, got ",
               dtype_name(bits.dtype), " ", shape_str(bits.shape));
  SHRINK_CHECK(values.dtype == DType::F32 && values.ndim() == 1, what, ": bitmask values must be a 1-D F32 tensor, got ",
               dtype_name(values.dtype), " ", shape_str(values.shape));
  kernels::MaskMatrix m;
  m.rows = bits.dim(0), m.cols = meta.ptr<const int32_t>()[0];
  SHRINK_CHECK(m.rows > 0 && m.cols > 0 && bits.dim(1) == m.groups(), what, ": bitmask bits ", shape_str(bits.shape),
               " do not fit in_features ", m.cols, " (expected {rows, ", m.cols > 0 ? m.groups() : 0, "})");
  const uint16_t* mk = bits.ptr<const uint16_t>();
  const int tail = int(m.cols % 16);
  if (tail != 0) {  // the last group's bits past in_features must be clear (they would read past the row)
    const uint16_t outside = uint16_t(0xFFFFu << tail);
    for (int64_t r = 0; r < m.rows; ++r)
      SHRINK_CHECK((mk[r * m.groups() + m.groups() - 1] & outside) == 0, what, ": bitmask row ", r,
                   " marks columns past in_features ", m.cols, " (corrupt mask)");
  }
  m.masks.assign(mk, mk + bits.numel());
  m.row_start = mask_row_starts(mk, m.rows, m.groups());
  SHRINK_CHECK(m.row_start.back() == values.numel(), what, ": the bitmask marks ", m.row_start.back(),
               " stored values but the values tensor holds ", values.numel(), " (truncated or corrupt)");
  m.values.assign(values.ptr<const float>(), values.ptr<const float>() + values.numel());
  return std::make_shared<SparseMaskWeight>(std::move(m));
}

// ------------------------------------------------------------------ whole model

int compress_model_mask(Transformer& model, double min_sparsity) {
  std::vector<Linear*> ls = model.linears();
  ls.pop_back();  // the output head stays as it is
  int count = 0;
  for (Linear* l : ls) {
    if (!dynamic_cast<const DenseWeight*>(&l->weight())) continue;
    const Tensor w = l->weight().to_dense_f32();
    const int64_t zeros = std::count(w.f32(), w.f32() + w.numel(), 0.0f);
    // A Linear of zeros only stays dense: its value tensor would be empty, which GGUF cannot hold.
    if (zeros == w.numel() || double(zeros) < min_sparsity * double(w.numel())) continue;
    l->set_weight(SparseMaskWeight::compress(w));
    ++count;
  }
  return count;
}

}  // namespace shrink
