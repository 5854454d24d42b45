#include "train/lora_gguf.h"

#include "io/gguf.h"

namespace shrink::train {

void save_lora_adapters_gguf(LoraAdapters& lora, const std::string& arch, float alpha, const std::string& path) {
  std::vector<GgufKV> kv{{"general.architecture", GgufValue(arch)},
                         {"general.type", GgufValue(std::string("adapter"))},
                         {"adapter.type", GgufValue(std::string("lora"))},
                         {"adapter.lora.alpha", GgufValue(alpha)}};
  std::vector<GgufTensorOut> tensors;
  for (Parameter* p : lora.params()) {
    GgufTensorOut t;
    t.name = p->name;  // "<weight>.lora_a" / "<weight>.lora_b" (train/lora.cpp)
    for (int d = p->value.ndim() - 1; d >= 0; --d) t.ne.push_back(uint64_t(p->value.shape[d]));  // GGUF order
    t.type = ggml_type::F32;
    t.data = p->value.f32();
    tensors.push_back(std::move(t));
  }
  write_gguf(path, kv, tensors);
}

}  // namespace shrink::train
