#include "train/student_init.h"

#include <string>

#include "core/error.h"

namespace shrink::train {

namespace {

Parameter copy_as(const Parameter& p, const std::string& name) {
  return p.value.empty() ? Parameter() : Parameter(name, p.value.clone(), p.decay);
}

Parameter copy(const Parameter& p) { return copy_as(p, p.name); }

// "blk.<from>.attn_q.weight" -> "blk.<to>.attn_q.weight"
std::string renamed(const std::string& name, int to) {
  const size_t dot = name.find('.', 4);
  SHRINK_CHECK(name.rfind("blk.", 0) == 0 && dot != std::string::npos, "not a block parameter: ", name);
  return "blk." + std::to_string(to) + name.substr(dot);
}

}  // namespace

TransformerParams clone_params(const TransformerParams& p) {
  return student_from_layers(p, [&] {
    std::vector<int> all(p.blocks.size());
    for (size_t l = 0; l < all.size(); ++l) all[l] = int(l);
    return all;
  }());
}

TransformerParams student_from_layers(const TransformerParams& teacher, const std::vector<int>& layers) {
  SHRINK_CHECK(!layers.empty(), "a student needs at least one layer");
  for (size_t i = 0; i < layers.size(); ++i) {
    SHRINK_CHECK(layers[i] >= 0 && layers[i] < int(teacher.blocks.size()), "layer ", layers[i],
                 " is not one of the teacher's ", teacher.blocks.size());
    SHRINK_CHECK(i == 0 || layers[i] > layers[i - 1], "student layers must be strictly increasing");
  }
  TransformerParams s;
  s.cfg = teacher.cfg;
  s.cfg.n_layers = int(layers.size());
  if (!teacher.cfg.uniform()) {  // a structurally pruned teacher: keep the chosen layers' sizes
    std::vector<int> h, kv, f;
    for (int l : layers) h.push_back(teacher.cfg.heads(l)), kv.push_back(teacher.cfg.kv_heads(l)),
                         f.push_back(teacher.cfg.ffn_dim(l));
    s.cfg.set_layer_sizes(h, kv, f);
  }
  s.tok_embd = copy(teacher.tok_embd);
  s.pos_embd = copy(teacher.pos_embd);
  s.out_norm = copy(teacher.out_norm);
  s.out_norm_b = copy(teacher.out_norm_b);
  s.output = copy(teacher.output);
  s.blocks.resize(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::vector<const Parameter*> from = teacher.blocks[layers[i]].fields();
    const std::vector<Parameter*> to = s.blocks[i].fields();
    for (size_t f = 0; f < from.size(); ++f) {  // empty members (the other architecture's) stay empty
      *to[f] = from[f]->value.empty() ? Parameter() : copy_as(*from[f], renamed(from[f]->name, int(i)));
      const auto lr = teacher.factors.find(from[f]->name);
      if (!from[f]->value.empty() || lr == teacher.factors.end()) continue;
      to[f]->name = renamed(from[f]->name, int(i));  // a factorized Linear: its name and its factors
      s.factors[to[f]->name] = LowRankFactors{copy_as(lr->second.u, renamed(lr->second.u.name, int(i))),
                                              copy_as(lr->second.v, renamed(lr->second.v.name, int(i)))};
    }
  }
  return s;
}

TransformerParams student_every_kth_layer(const TransformerParams& teacher, int k) {
  SHRINK_CHECK(k >= 1, "every k-th layer needs k >= 1, got ", k);
  std::vector<int> layers;
  for (int l = 0; l < int(teacher.blocks.size()); l += k) layers.push_back(l);
  return student_from_layers(teacher, layers);
}

}  // namespace shrink::train
