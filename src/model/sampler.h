// Next-token sampling: greedy (temperature 0), temperature, top-k and top-p
// (nucleus), reproducible from a seed.
#pragma once
#include <cstdint>
#include <random>

namespace shrink {

struct SamplerOptions {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  uint64_t seed = 42;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions o) : opt_(o), rng_(o.seed) {}
  int32_t sample(const float* logits, int vocab);

 private:
  SamplerOptions opt_;
  std::mt19937_64 rng_;
};

int32_t argmax(const float* x, int n);

}  // namespace shrink
