#include "compress/calib/fold.h"

#include <map>
#include <memory>

#include "core/error.h"

namespace shrink::calib {

namespace {

struct Site {
  Tensor* norm = nullptr;       // RMSNorm/LayerNorm weight
  Tensor* norm_bias = nullptr;  // LayerNorm bias (GPT-2)
  Linear* linear = nullptr;     // or rows [row0, row0 + in) of a Linear
  int64_t row0 = 0;
};

Site site_of(Transformer& model, int layer, const std::vector<Linear*>& group) {
  Block& b = model.block(layer);
  const ModelConfig& c = model.config();
  Site p;
  const Linear* first = group.front();
  if (c.arch == Arch::GPT2) {
    if (first == &b.wqkv) p.norm = &b.attn_norm, p.norm_bias = &b.attn_norm_b;
    else if (first == &b.wo && c.kv_dim() == c.q_dim()) p.linear = &b.wqkv, p.row0 = c.q_dim() + c.kv_dim();
    else if (first == &b.w_up) p.norm = &b.ffn_norm, p.norm_bias = &b.ffn_norm_b;
    // ffn_down's input comes through GELU: no linear producer to fold into.
  } else {
    if (first == &b.wq) p.norm = &b.attn_norm;
    else if (first == &b.wo && b.wv.out_features() == b.wo.in_features()) p.linear = &b.wv;
    else if (first == &b.w_gate) p.norm = &b.ffn_norm;
    else if (first == &b.w_down) p.linear = &b.w_up;  // silu(gate) * up is linear in up
  }
  return p;
}

// An owned f32 copy (norms may view a read-only mapping).
void own_f32(Tensor& t) {
  if (!t.empty()) t = t.to(DType::F32);
}

}  // namespace

Producer producer_of(Transformer& model, int layer, const std::vector<Linear*>& group) {
  const Site s = site_of(model, layer, group);
  return s.norm ? Producer::Norm : s.linear ? Producer::Linear : Producer::None;
}

F32Of dense_f32_of() {
  auto owned = std::make_shared<std::map<const Linear*, Tensor>>();
  return [owned](Linear& l) -> Tensor& {
    auto it = owned->find(&l);
    if (it == owned->end()) {
      it = owned->emplace(&l, l.weight().to_dense_f32()).first;
      l.set_weight(make_weight(it->second));  // shares the copy's storage
    }
    return it->second;
  };
}

void fold_input_scale(Transformer& model, int layer, const std::vector<Linear*>& group, const std::vector<float>& s,
                      const F32Of& f32_of) {
  const Site p = site_of(model, layer, group);
  SHRINK_CHECK(p.norm || p.linear, "cannot fold an input scale into ", group.front()->name(), ": no linear producer");
  const int64_t cols = group.front()->in_features();
  SHRINK_CHECK(int64_t(s.size()) == cols, "fold_input_scale: ", s.size(), " scales for ", cols, " inputs");
  for (Linear* l : group) {
    Tensor& w = f32_of(*l);
    for (int64_t r = 0; r < w.dim(0); ++r)
      for (int64_t j = 0; j < cols; ++j) w.f32()[r * cols + j] *= s[j];
  }
  if (p.norm) {
    own_f32(*p.norm);
    for (int64_t j = 0; j < cols; ++j) p.norm->f32()[j] /= s[j];
    if (p.norm_bias && !p.norm_bias->empty()) {
      own_f32(*p.norm_bias);
      for (int64_t j = 0; j < cols; ++j) p.norm_bias->f32()[j] /= s[j];
    }
    return;
  }
  Tensor& w = f32_of(*p.linear);
  const int64_t in = w.dim(1);
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t c = 0; c < in; ++c) w.f32()[(p.row0 + j) * in + c] /= s[j];
  if (!p.linear->bias().empty()) {
    Tensor b = p.linear->bias().to(DType::F32);
    for (int64_t j = 0; j < cols; ++j) b.f32()[p.row0 + j] /= s[j];
    p.linear->set_bias(std::move(b));
  }
}

}  // namespace shrink::calib
