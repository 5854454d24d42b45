#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace shrink {

int32_t argmax(const float* x, int n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

int32_t Sampler::sample(const float* logits, int vocab) {
  if (opt_.temperature <= 0.0f) return argmax(logits, vocab);
  std::vector<int32_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  int keep = vocab;
  if (opt_.top_k > 0 && opt_.top_k < vocab) {
    keep = opt_.top_k;
    std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  } else {
    std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  }
  // Softmax over the kept candidates at the given temperature.
  std::vector<double> p(keep);
  const double mx = logits[idx[0]];
  double sum = 0;
  for (int i = 0; i < keep; ++i) sum += p[i] = std::exp((logits[idx[i]] - mx) / opt_.temperature);
  for (auto& v : p) v /= sum;
  if (opt_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double cum = 0;
    int cut = keep;
    for (int i = 0; i < keep; ++i) {
      cum += p[i];
      if (cum >= opt_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    sum = std::accumulate(p.begin(), p.begin() + keep, 0.0);
  }
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng_);
  for (int i = 0; i < keep; ++i) {
    r -= p[i];
    if (r <= 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace shrink
