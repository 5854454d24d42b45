#include "compress/calib/calib.h"

#include <algorithm>

#include "core/error.h"

namespace shrink::calib {

int64_t CalibSet::tokens() const {
  int64_t n = 0;
  for (const auto& s : seqs) n += static_cast<int64_t>(s.size());
  return n;
}

CalibSet make_calib_set(const Tokenizer& tok, const std::string& text, int64_t n_tokens, int seq_len) {
  SHRINK_CHECK(seq_len >= 2, "calibration sequences need at least 2 tokens, got ", seq_len);
  SHRINK_CHECK(tok.bos_id() >= 0, "the tokenizer has no BOS token to start calibration windows with");
  const std::vector<int32_t> ids = tok.encode(text, true);
  const int64_t windows = std::min<int64_t>(int64_t(ids.size()) / seq_len, std::max<int64_t>(1, n_tokens / seq_len));
  SHRINK_CHECK(windows > 0, "calibration text has ", ids.size(), " tokens: fewer than one window of ", seq_len);
  CalibSet set;
  for (int64_t w = 0; w < windows; ++w) {
    std::vector<int32_t> s(ids.begin() + w * seq_len, ids.begin() + (w + 1) * seq_len);
    s[0] = tok.bos_id();
    set.seqs.push_back(std::move(s));
  }
  return set;
}

std::vector<std::vector<Linear*>> block_groups(Transformer& model, int layer) {
  Block& b = model.block(layer);
  std::vector<std::vector<Linear*>> groups;
  if (model.config().arch == Arch::GPT2)
    groups = {{&b.wqkv}, {&b.wo}, {&b.w_up}, {&b.w_down}};
  else
    groups = {{&b.wq, &b.wk, &b.wv}, {&b.wo}, {&b.w_gate, &b.w_up}, {&b.w_down}};
  return groups;
}

namespace {

std::string group_label(const std::vector<Linear*>& g) {
  std::string s;
  for (const Linear* l : g) s += (s.empty() ? "" : ",") + l->name();
  return s;
}

// Runs block `layer` on every sequence's hidden state; with `inplace` the
// outputs replace the states, otherwise they are discarded (an observation pass).
void run_block(Transformer& model, int layer, std::vector<std::vector<float>>& hidden, const CalibSet& calib,
               KVCache& cache, bool inplace) {
  std::vector<float> tmp;
  for (size_t s = 0; s < hidden.size(); ++s) {
    float* x = hidden[s].data();
    if (!inplace) {
      tmp = hidden[s];
      x = tmp.data();
    }
    cache.clear();
    model.forward_block(layer, x, static_cast<int>(calib.seqs[s].size()), cache);
  }
}

}  // namespace

void run_blockwise(Transformer& model, const CalibSet& calib, BlockMethod& method, const DriverOptions& opt) {
  SHRINK_CHECK(!calib.seqs.empty(), "no calibration sequences");
  const ModelConfig& cfg = model.config();
  int max_len = 0;
  for (const auto& s : calib.seqs) max_len = std::max<int>(max_len, static_cast<int>(s.size()));
  KVCache cache = model.new_cache(max_len);
  std::vector<std::vector<float>> hidden(calib.seqs.size());
  for (size_t s = 0; s < calib.seqs.size(); ++s) {
    hidden[s].resize(calib.seqs[s].size() * size_t(cfg.dim));
    model.embed(calib.seqs[s].data(), static_cast<int>(calib.seqs[s].size()), 0, hidden[s].data());
  }
  LinearInputHook saved = model.hook;
  const std::vector<Linear*>* current = nullptr;
  model.hook = [&](const Linear& l, const float* x, int64_t n) {
    if (current && std::find(current->begin(), current->end(), &l) != current->end()) method.observe(l, x, n);
  };
  try {
    for (int layer = 0; layer < cfg.n_layers; ++layer) {
      for (const auto& group : block_groups(model, layer)) {
        if (opt.progress) opt.progress(layer, cfg.n_layers, group_label(group));
        method.begin_group(model, layer, group);
        current = &group;
        run_block(model, layer, hidden, calib, cache, false);
        current = nullptr;
        method.rewrite(model, layer, group);
      }
      run_block(model, layer, hidden, calib, cache, true);
    }
    if (method.wants_head()) {
      const std::vector<Linear*> head = {&model.output()};
      if (opt.progress) opt.progress(cfg.n_layers, cfg.n_layers, "output");
      method.begin_group(model, cfg.n_layers, head);
      current = &head;
      std::vector<float> logits;
      for (size_t s = 0; s < hidden.size(); ++s) {
        const int n = static_cast<int>(calib.seqs[s].size());
        logits.resize(size_t(n) * cfg.vocab_size);
        model.forward_head(hidden[s].data(), n, logits.data());
      }
      current = nullptr;
      method.rewrite(model, cfg.n_layers, head);
    }
  } catch (...) {
    model.hook = saved;
    throw;
  }
  model.hook = saved;
}

}  // namespace shrink::calib
