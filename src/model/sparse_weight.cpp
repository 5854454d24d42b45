#include "model/sparse_weight.h"

#include <cstring>

#include "core/error.h"

namespace shrink {

using kernels::NmShape;

SparseNmWeight::SparseNmWeight(NmShape shape, Tensor values, Tensor indices)
    : shape_(shape), values_(std::move(values)), indices_(std::move(indices)) {
  kernels::check_nm_shape(shape_);
  SHRINK_CHECK(values_.dtype == DType::F32 || values_.dtype == DType::BF16, "N:M sparse weight: values must be f32 or bf16, got ",
               dtype_name(values_.dtype));
  SHRINK_CHECK(indices_.dtype == DType::I32, "N:M sparse weight: indices must be I32 words, got ",
               dtype_name(indices_.dtype));
  const std::vector<int64_t> vshape = {shape_.rows, shape_.values_per_row()},
                             ishape = {shape_.rows, shape_.index_words_per_row()};
  SHRINK_CHECK(values_.shape == vshape && indices_.shape == ishape, "N:M sparse weight ", shape_.n, ":", shape_.m, " of ",
               shape_.rows, "x", shape_.cols, ": values ", shape_str(values_.shape), " and indices ",
               shape_str(indices_.shape), ", expected ", shape_str(vshape), " and ", shape_str(ishape));
}

std::shared_ptr<SparseNmWeight> SparseNmWeight::compress(const Tensor& w, int n, int m, DType vtype) {
  SHRINK_CHECK(w.ndim() == 2, "N:M compression needs a 2-D weight, got ", shape_str(w.shape));
  SHRINK_CHECK(vtype == DType::F32 || vtype == DType::BF16, "N:M values must be f32 or bf16, not ", dtype_name(vtype));
  const NmShape s{n, m, w.dim(0), w.dim(1)};
  kernels::check_nm_shape(s);
  const Tensor wf = w.dtype == DType::F32 ? w : w.to(DType::F32);
  const int64_t vpr = s.values_per_row(), ipr = s.index_words_per_row(), G = s.groups();
  const int b = s.index_bits(), per_word = 32 / b;
  Tensor vals = Tensor::zeros(DType::F32, {s.rows, vpr});
  Tensor idx = Tensor::zeros(DType::I32, {s.rows, ipr});
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* row = wf.f32() + r * s.cols;
    float* v = vals.f32() + r * vpr;
    uint32_t* ix = idx.ptr<uint32_t>() + r * ipr;
    for (int64_t g = 0; g < G; ++g) {
      int kept = 0;
      for (int j = 0; j < m && g * m + j < s.cols; ++j) {
        if (row[g * m + j] == 0.0f) continue;
        SHRINK_CHECK(kept < n, "weight row ", r, ", columns ", g * m, "..", g * m + m - 1, " hold more than ", n,
                     " non-zeros: the matrix is not ", n, ":", m, " sparse (prune it with --sparsity ", n, ":", m,
                     " first)");
        const int64_t k = g * n + kept++;
        v[k] = row[g * m + j];
        ix[k / per_word] |= uint32_t(j) << (b * (k % per_word));
      }
      // Unused slots keep value 0 and index 0 (column g*m, inside the row).
    }
  }
  return std::make_shared<SparseNmWeight>(s, vtype == DType::F32 ? vals : vals.to(vtype), idx);
}

std::string SparseNmWeight::kind() const {
  return std::to_string(shape_.n) + ":" + std::to_string(shape_.m) + " " + std::string(dtype_name(values_.dtype));
}

Tensor SparseNmWeight::to_dense_f32() const {
  Tensor t = Tensor::alloc(DType::F32, {shape_.rows, shape_.cols});
  kernels::nm_unpack(shape_, values_.dtype, values_.data, idx(), t.f32());
  return t;
}

void SparseNmWeight::matmul(const float* x, float* y, int64_t n) const {
  kernels::nm_matmul(shape_, values_.dtype, values_.data, idx(), x, y, n);
}

Tensor sparse_meta_tensor(const NmShape& s) {
  Tensor t = Tensor::alloc(DType::I32, {3});
  int32_t* p = t.ptr<int32_t>();
  p[0] = s.n, p[1] = s.m, p[2] = static_cast<int32_t>(s.cols);
  return t;
}

std::shared_ptr<SparseNmWeight> sparse_weight_from_tensors(const Tensor& values, const Tensor& indices,
                                                           const Tensor& meta, const std::string& what) {
  SHRINK_CHECK(meta.dtype == DType::I32 && meta.numel() == 3, what, ": N:M metadata must be 3 I32 values (N, M, in)");
  SHRINK_CHECK(values.ndim() == 2, what, ": N:M values must be 2-D, got ", shape_str(values.shape));
  const int32_t* p = meta.ptr<const int32_t>();
  const NmShape s{p[0], p[1], values.dim(0), p[2]};
  try {
    return std::make_shared<SparseNmWeight>(s, values, indices);
  } catch (const std::exception& e) {
    fail(what, ": ", e.what());
  }
}

}  // namespace shrink

#include "model/transformer.h"

namespace shrink {

int compress_model_nm(Transformer& model, int n, int m, DType vtype) {
  int count = 0;
  for (Linear* l : model.linears()) {
    if (l == &model.output()) continue;  // the head is never pruned
    const auto* d = dynamic_cast<const DenseWeight*>(&l->weight());
    SHRINK_CHECK(d, l->name(), ": a ", l->weight().kind(), " weight cannot be N:M-compressed (needs a dense pruned one)");
    const DType vt = vtype == DType::F32 || vtype == DType::BF16 ? vtype
                     : d->tensor().dtype == DType::BF16   ? DType::BF16
                                                          : DType::F32;
    try {
      l->set_weight(SparseNmWeight::compress(d->tensor(), n, m, vt));
    } catch (const std::exception& e) {
      fail(l->name(), ": ", e.what());
    }
    ++count;
  }
  return count;
}

}  // namespace shrink
