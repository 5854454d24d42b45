#include "model/sparse_mask_weight.h"

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

int compress_model_mask(Transformer& model) {
  std::vector<Linear*> ls = model.linears();
  ls.pop_back();  // the output head stays as it is
  int count = 0;
  for (Linear* l : ls) {
    if (!dynamic_cast<const DenseWeight*>(&l->weight())) continue;
    l->set_weight(SparseMaskWeight::compress(l->weight().to_dense_f32()));
    ++count;
  }
  return count;
}

}  // namespace shrink
