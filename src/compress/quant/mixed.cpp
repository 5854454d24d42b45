#include "compress/quant/mixed.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace shrink::quant {

std::vector<QuantTarget> default_ladder(const QuantTarget& like) {
  std::vector<QuantTarget> v;
  if (like.is_block) {
    for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_0})
      v.push_back(QuantTarget::of_block(t));
  } else {
    for (int bits : {2, 3, 4, 5, 6, 8}) {
      QuantSpec s = like.spec;
      s.bits = bits;
      v.push_back(QuantTarget::parse(s.name()));
    }
  }
  return v;
}

namespace {

// log_softmax of each of n rows of `vocab` logits, in place.
void log_softmax_rows(float* x, int64_t n, int64_t vocab) {
  for (int64_t r = 0; r < n; ++r) {
    float* p = x + r * vocab;
    const float m = *std::max_element(p, p + vocab);
    double s = 0;
    for (int64_t i = 0; i < vocab; ++i) s += std::exp(double(p[i]) - m);
    const float lse = m + static_cast<float>(std::log(s));
    for (int64_t i = 0; i < vocab; ++i) p[i] -= lse;
  }
}

// The model run from block `first` on cached hidden states, against the
// original model's log-probabilities.
class SuffixRunner {
 public:
  SuffixRunner(Transformer& model, std::vector<std::vector<int32_t>> seqs) : m_(model), seqs_(std::move(seqs)) {
    const ModelConfig& c = m_.config();
    int max_len = 0;
    for (const auto& s : seqs_) max_len = std::max<int>(max_len, static_cast<int>(s.size()));
    cache_ = m_.new_cache(max_len);
    hidden_.assign(size_t(c.n_layers + 1), {});
    for (size_t i = 0; i < seqs_.size(); ++i) {
      const int n = static_cast<int>(seqs_[i].size());
      std::vector<float> x(size_t(n) * c.dim);
      m_.embed(seqs_[i].data(), n, 0, x.data());
      cache_.clear();
      for (int l = 0; l < c.n_layers; ++l) {
        hidden_[size_t(l)].push_back(x);
        m_.forward_block(l, x.data(), n, cache_);
      }
      hidden_[size_t(c.n_layers)].push_back(x);
      std::vector<float> lp(size_t(n) * c.vocab_size);
      m_.forward_head(x.data(), n, lp.data());
      log_softmax_rows(lp.data(), n, c.vocab_size);
      std::vector<float> p(lp.size());
      for (size_t k = 0; k < lp.size(); ++k) p[k] = std::exp(lp[k]);
      base_logp_.push_back(std::move(lp));
      base_p_.push_back(std::move(p));
    }
  }

  // Mean KL(original || current) per token, running blocks first..n_layers-1 then the head.
  double kld_from(int first) {
    const ModelConfig& c = m_.config();
    double sum = 0;
    int64_t tokens = 0;
    for (size_t i = 0; i < seqs_.size(); ++i) {
      const int n = static_cast<int>(seqs_[i].size());
      std::vector<float> x = hidden_[size_t(first)][i];
      cache_.clear();
      for (int l = first; l < c.n_layers; ++l) m_.forward_block(l, x.data(), n, cache_);
      std::vector<float> lq(size_t(n) * c.vocab_size);
      m_.forward_head(x.data(), n, lq.data());
      log_softmax_rows(lq.data(), n, c.vocab_size);
      const std::vector<float>& lp = base_logp_[i];
      const std::vector<float>& p = base_p_[i];
      for (int64_t k = 0; k < int64_t(n) * c.vocab_size; ++k) sum += double(p[k]) * (double(lp[k]) - lq[k]);
      tokens += n;
    }
    return sum / double(tokens);
  }

 private:
  Transformer& m_;
  std::vector<std::vector<int32_t>> seqs_;
  KVCache cache_;
  std::vector<std::vector<std::vector<float>>> hidden_;  // [block][seq] input of that block
  std::vector<std::vector<float>> base_logp_, base_p_;  // the original's log-probabilities and probabilities
};

}  // namespace

std::vector<LayerSensitivity> measure_sensitivity(Transformer& model, const calib::CalibSet& calib, int64_t n_tokens,
                                                  const std::vector<QuantTarget>& ladder, const QuantizeOptions& opt,
                                                  const std::function<void(int, int)>& progress) {
  SHRINK_CHECK(!calib.seqs.empty(), "measuring sensitivity needs calibration text (--calib)");
  SHRINK_CHECK(!ladder.empty(), "no candidate targets to allocate");
  std::vector<std::vector<int32_t>> seqs;
  int64_t have = 0;
  for (const auto& s : calib.seqs) {
    if (have >= n_tokens) break;
    seqs.push_back(s), have += static_cast<int64_t>(s.size());
  }
  SuffixRunner run(model, std::move(seqs));
  const int n_layers = model.config().n_layers;
  const bool head = opt.quantize_head && !model.config().tied_embeddings;
  std::vector<LayerSensitivity> out;
  std::vector<Linear*> ls = model.linears();
  for (size_t i = 0; i < ls.size(); ++i) {
    Linear& l = *ls[i];
    const bool is_head = &l == &model.output();
    if (is_head && !head) continue;
    if (progress) progress(static_cast<int>(i), static_cast<int>(ls.size()));
    int layer = n_layers;
    if (!is_head) SHRINK_CHECK(std::sscanf(l.name().c_str(), "blk.%d.", &layer) == 1, "unexpected Linear name ", l.name());
    const std::shared_ptr<WeightRepr> original = l.weight_ptr();
    const Tensor w = l.weight().to_dense_f32();
    LayerSensitivity s;
    s.name = l.name(), s.params = l.in_features() * l.out_features();
    for (const QuantTarget& t0 : ladder) {
      const QuantTarget t = fit_target(t0, l.in_features());
      l.set_weight(quantize_matrix(t, w, nullptr));
      s.targets.push_back(t);
      s.bytes.push_back(l.weight().bytes());
      s.kld.push_back(std::max(0.0, run.kld_from(layer)));
    }
    l.set_weight(original);
    out.push_back(std::move(s));
  }
  return out;
}

std::map<std::string, QuantTarget> allocate_bits(const std::vector<LayerSensitivity>& s, int64_t budget_bytes) {
  std::vector<size_t> choice(s.size());
  int64_t total = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    SHRINK_CHECK(!s[i].bytes.empty(), s[i].name, ": no measured targets");
    choice[i] = static_cast<size_t>(std::min_element(s[i].bytes.begin(), s[i].bytes.end()) - s[i].bytes.begin());
    total += s[i].bytes[choice[i]];
  }
  for (;;) {
    double best_gain = 0;
    size_t bi = 0, bj = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      const size_t c = choice[i];
      for (size_t j = 0; j < s[i].bytes.size(); ++j) {
        const int64_t extra = s[i].bytes[j] - s[i].bytes[c];
        const double saved = s[i].kld[c] - s[i].kld[j];
        if (extra <= 0 || saved <= 0 || total + extra > budget_bytes) continue;
        if (const double gain = saved / double(extra); gain > best_gain) best_gain = gain, bi = i, bj = j;
      }
    }
    if (best_gain <= 0) break;
    total += s[bi].bytes[bj] - s[bi].bytes[choice[bi]];
    choice[bi] = bj;
  }
  std::map<std::string, QuantTarget> out;
  for (size_t i = 0; i < s.size(); ++i) out[s[i].name] = s[i].targets[choice[i]];
  return out;
}

}  // namespace shrink::quant
