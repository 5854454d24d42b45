// LoRA adapters as a GGUF file in llama.cpp's adapter layout
// (convert_lora_to_gguf.py): general.type = "adapter", adapter.type = "lora",
// adapter.lora.alpha; tensors "<base weight>.lora_a" {r, in} and
// "<base weight>.lora_b" {out, r} in f32, applied as W + (alpha/r)·B·A.
#pragma once
#include <string>

#include "train/lora.h"

namespace shrink::train {

void save_lora_adapters_gguf(LoraAdapters& lora, const std::string& arch, float alpha, const std::string& path);

}  // namespace shrink::train
