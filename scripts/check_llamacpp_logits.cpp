// check_llamacpp_logits MODEL OUT.f32 ID,ID,... [UBATCH] : shrink's forward over the given token ids (one
// pass, or UBATCH tokens at a time as `shrink eval --ubatch`), all positions' logits [n x vocab] written as
// raw little-endian float32. Built and used by
// scripts/check_llamacpp.sh to compare with llama.cpp's logits; linked against shrink's library, not part of shrink.
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "io/model_file.h"
#include "model/transformer.h"

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: check_llamacpp_logits MODEL OUT.f32 ID,ID,... [UBATCH]\n");
    return 2;
  }
  shrink::set_num_threads(1);
  std::vector<int32_t> ids;
  std::stringstream ss(argv[3]);
  for (std::string s; std::getline(ss, s, ',');) ids.push_back(std::stoi(s));
  shrink::ModelFile m = shrink::load_model(argv[1]);
  shrink::Transformer t(m);
  const int V = t.config().vocab_size, n = static_cast<int>(ids.size());
  shrink::KVCache cache = t.new_cache(n);
  std::vector<float> logits(size_t(n) * V);
  const int ub = argc == 5 ? std::max(1, std::stoi(argv[4])) : n;
  for (int i = 0; i < n; i += ub) t.forward(ids.data() + i, std::min(ub, n - i), cache, logits.data() + size_t(i) * V, true);
  FILE* f = std::fopen(argv[2], "wb");
  if (!f || std::fwrite(logits.data(), 4, logits.size(), f) != logits.size()) return 1;
  std::fclose(f);
  std::fprintf(stderr, "check_llamacpp_logits: %d positions x %d vocab -> %s\n", n, V, argv[2]);
  return 0;
}
