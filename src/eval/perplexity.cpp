#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/error.h"

namespace shrink::eval {

namespace {

// log-softmax of a row, in double for stable KL sums.
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(n);
  const double mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = double(x[i]) - lse;
}

struct Accum {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void add(double v) {
    sum += v;
    sum2 += v * v;
    ++n;
  }
  double mean() const { return n ? sum / n : 0; }
  double stderr_() const {
    if (n < 2) return 0;
    const double m = mean();
    const double var = sum2 / n - m * m;
    return var > 0 ? std::sqrt(var / (n - 1)) : 0;
  }
};

// All logits of a window, ubatch tokens per forward call (0: one call).
void forward_window(Transformer& model, const std::vector<int32_t>& window, KVCache& cache, std::vector<float>& logits,
                    int ubatch) {
  const int n = int(window.size()), step = ubatch > 0 ? ubatch : n, vocab = model.config().vocab_size;
  for (int i = 0; i < n; i += step)
    model.forward(window.data() + i, std::min(step, n - i), cache, logits.data() + int64_t(i) * vocab, true);
}

}  // namespace

PerplexityResult perplexity(Transformer& model, const std::vector<int32_t>& tokens, const PerplexityOptions& opt,
                            Transformer* base, const Progress& progress) {
  const int n_ctx = opt.n_ctx;
  SHRINK_CHECK(n_ctx >= 4, "context size ", n_ctx, " is too small (need >= 4)");
  const int vocab = model.config().vocab_size;
  if (base)
    SHRINK_CHECK(base->config().vocab_size == vocab, "base model vocabulary (", base->config().vocab_size,
                 ") differs from the model's (", vocab, ")");
  const int max_chunks = static_cast<int>(tokens.size() / n_ctx);
  const int chunks = opt.chunks < 0 ? max_chunks : std::min(opt.chunks, max_chunks);
  SHRINK_CHECK(chunks > 0, "text has ", tokens.size(), " tokens: fewer than one window of ", n_ctx);

  PerplexityResult res;
  res.chunks = chunks;
  res.has_base = base != nullptr;
  const double t0 = now_seconds();
  KVCache cache = model.new_cache(n_ctx, opt.kv_cache);
  KVCache base_cache = base ? base->new_cache(n_ctx, opt.base_kv_cache) : KVCache{};
  std::vector<float> logits(size_t(n_ctx) * vocab), base_logits(base ? size_t(n_ctx) * vocab : 0);
  std::vector<int32_t> window(n_ctx);
  std::vector<double> lp, blp;
  Accum nll, base_nll, kld;
  int64_t agree = 0;
  const int first = opt.all_positions ? 0 : n_ctx / 2;

  for (int c = 0; c < chunks; ++c) {
    std::copy(tokens.begin() + int64_t(c) * n_ctx, tokens.begin() + int64_t(c + 1) * n_ctx, window.begin());
    window[0] = opt.bos_id;
    cache.clear();
    forward_window(model, window, cache, logits, opt.ubatch);
    if (base) {
      base_cache.clear();
      forward_window(*base, window, base_cache, base_logits, opt.ubatch);
    }
    for (int j = first; j < n_ctx - 1; ++j) {
      const int32_t target = tokens[int64_t(c) * n_ctx + j + 1];
      const float* row = logits.data() + int64_t(j) * vocab;
      log_softmax(row, vocab, lp);
      nll.add(-lp[target]);
      res.nll_per_token.push_back(float(-lp[target]));
      if (!base) continue;
      const float* brow = base_logits.data() + int64_t(j) * vocab;
      log_softmax(brow, vocab, blp);
      base_nll.add(-blp[target]);
      double kl = 0;
      for (int i = 0; i < vocab; ++i) kl += std::exp(blp[i]) * (blp[i] - lp[i]);
      kld.add(kl);
      agree += std::max_element(lp.begin(), lp.end()) - lp.begin() == std::max_element(blp.begin(), blp.end()) - blp.begin();
    }
    if (progress) progress(c + 1, chunks, std::exp(nll.mean()));
  }
  res.scored = nll.n;
  res.nll = nll.mean();
  res.ppl = std::exp(res.nll);
  res.ppl_err = nll.stderr_() * res.ppl;
  if (base) {
    res.base_ppl = std::exp(base_nll.mean());
    res.kld = kld.mean();
    res.kld_err = kld.stderr_();
    res.top1 = double(agree) / std::max<int64_t>(1, kld.n);
  }
  res.seconds = now_seconds() - t0;
  return res;
}

}  // namespace shrink::eval
