// Importance criteria of structured pruning (structured.h): L1/L2 of a group's
// weights, mean |activation| of its output, first-order Taylor, and ShortGPT's
// Block Influence for whole layers.
#include <cmath>
#include <string>

#include "compress/prune/structured.h"
#include "core/error.h"
#include "train/llama_graph.h"
#include "train/losses.h"

namespace shrink::prune {

namespace {

// Per-element saliency of a block Linear's weight: |w|, w^2 or |w * grad|, f32 {out, in}.
using Saliency = std::function<Tensor(int layer, const std::string& linear)>;

struct Sums {
  std::vector<double> rows, cols;  // sum over each row, over each column
};

Sums row_col_sums(const Tensor& s) {
  Sums out{std::vector<double>(s.dim(0), 0.0), std::vector<double>(s.dim(1), 0.0)};
  const float* x = s.f32();
  for (int64_t r = 0; r < s.dim(0); ++r)
    for (int64_t c = 0; c < s.dim(1); ++c) {
      const double v = x[r * s.dim(1) + c];
      out.rows[r] += v, out.cols[c] += v;
    }
  return out;
}

// Adds the sums of `width` consecutive entries starting at offset + g * width into score[g].
void add_groups(std::vector<double>& score, const std::vector<double>& sums, int64_t width, int64_t offset) {
  for (size_t g = 0; g < score.size(); ++g)
    for (int64_t i = 0; i < width; ++i) score[g] += sums[offset + g * width + i];
}

// Group scores as the sum of the elements' saliency over each group's rows and columns.
LayerScores group_sums(const ModelConfig& c, StructKind k, const Saliency& sal) {
  SHRINK_CHECK(k != StructKind::Layers, "layers are ranked by block importance (--importance block)");
  LayerScores out(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    std::vector<double>& s = out[l];
    s.assign(group_count(c, k, l), 0.0);
    const int64_t hd = c.head_dim, r = c.heads(l) / c.kv_heads(l);
    if (k == StructKind::Channels) {
      if (c.arch == Arch::Llama) add_groups(s, row_col_sums(sal(l, "ffn_gate")).rows, 1, 0);
      add_groups(s, row_col_sums(sal(l, "ffn_up")).rows, 1, 0);
      add_groups(s, row_col_sums(sal(l, "ffn_down")).cols, 1, 0);
      continue;
    }
    if (c.arch == Arch::GPT2) {
      const std::vector<double> rows = row_col_sums(sal(l, "attn_qkv")).rows;
      for (int part = 0; part < 3; ++part) add_groups(s, rows, hd, part * c.q_dim(l));
    } else {
      add_groups(s, row_col_sums(sal(l, "attn_q")).rows, r * hd, 0);
      add_groups(s, row_col_sums(sal(l, "attn_k")).rows, hd, 0);
      add_groups(s, row_col_sums(sal(l, "attn_v")).rows, hd, 0);
    }
    add_groups(s, row_col_sums(sal(l, "attn_output")).cols, r * hd, 0);
  }
  return out;
}

std::string block_name(int l, const std::string& linear) { return "blk." + std::to_string(l) + "." + linear + ".weight"; }

}  // namespace

LayerScores weight_norm_scores(const ModelFile& m, StructKind k, Importance norm) {
  SHRINK_CHECK(norm == Importance::L1 || norm == Importance::L2, "weight_norm_scores takes l1 or l2");
  const bool l2 = norm == Importance::L2;
  LayerScores s = group_sums(m.config, k, [&](int l, const std::string& lin) {
    Tensor w = m.get(block_name(l, lin)).to(DType::F32);
    Tensor out = Tensor::alloc(DType::F32, w.shape);
    for (int64_t i = 0; i < w.numel(); ++i) out.f32()[i] = l2 ? w.f32()[i] * w.f32()[i] : std::fabs(w.f32()[i]);
    return out;
  });
  if (l2)
    for (auto& layer : s)
      for (double& x : layer) x = std::sqrt(x);
  return s;
}

namespace {

// Mean |x| of each input column of wo (head outputs) and w_down (FFN channels),
// observed on the calibration driver; no weight is rewritten.
class ActivationObserver : public calib::BlockMethod {
 public:
  ActivationObserver(Transformer& model, StructKind k) : model_(model), kind_(k) {
    const int L = model.config().n_layers;
    sums_.resize(L), count_.assign(L, 0);
  }
  void begin_group(Transformer&, int layer, const std::vector<Linear*>&) override { layer_ = layer; }
  void observe(const Linear& l, const float* x, int64_t n) override {
    const Block& b = model_.block(layer_);
    if (&l != (kind_ == StructKind::Heads ? &b.wo : &b.w_down)) return;
    std::vector<double>& s = sums_[layer_];
    const int64_t in = l.in_features();
    s.resize(in, 0.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < in; ++j) s[j] += std::fabs(x[t * in + j]);
    count_[layer_] += n;
  }
  void rewrite(Transformer&, int, const std::vector<Linear*>&) override {}

  LayerScores scores() const {
    const ModelConfig& c = model_.config();
    LayerScores out(c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) {
      SHRINK_CHECK(count_[l] > 0, "no calibration tokens reached layer ", l);
      out[l].assign(group_count(c, kind_, l), 0.0);
      const int64_t width = kind_ == StructKind::Heads ? int64_t(c.heads(l) / c.kv_heads(l)) * c.head_dim : 1;
      add_groups(out[l], sums_[l], width, 0);
      for (double& x : out[l]) x /= double(count_[l]) * double(width);  // mean over tokens and the group's dims
    }
    return out;
  }

 private:
  Transformer& model_;
  StructKind kind_;
  int layer_ = 0;
  std::vector<std::vector<double>> sums_;
  std::vector<int64_t> count_;
};

}  // namespace

LayerScores activation_scores(Transformer& model, const calib::CalibSet& calib, StructKind k) {
  SHRINK_CHECK(k != StructKind::Layers, "layers are ranked by block importance (--importance block)");
  SHRINK_CHECK(!calib.seqs.empty(), "activation importance needs calibration text (--calib)");
  ActivationObserver obs(model, k);
  calib::run_blockwise(model, calib, obs);
  return obs.scores();
}

LayerScores taylor_scores(const ModelFile& m, const calib::CalibSet& calib, StructKind k,
                          const std::function<void(int, int)>& progress) {
  SHRINK_CHECK(!calib.seqs.empty(), "taylor importance needs calibration text (--calib)");
  train::TransformerParams p = train::TransformerParams::from_model_file(m);
  for (train::Parameter* q : p.all()) q->zero_grad();
  // Gradients of the mean next-token loss of each sequence, summed over the
  // sequences (LLM-Pruner accumulates over its calibration batch the same way).
  for (size_t s = 0; s < calib.seqs.size(); ++s) {
    const std::vector<int32_t>& seq = calib.seqs[s];
    std::vector<int32_t> targets(seq.begin() + 1, seq.end());
    targets.push_back(train::kIgnoreTarget);
    train::Graph g;
    train::Var logits = train::model_logits(g, p, seq, int64_t(seq.size()));
    g.backward(train::cross_entropy(logits, targets));
    if (progress) progress(int(s) + 1, int(calib.seqs.size()));
  }
  auto param = [&](int l, const std::string& lin) -> train::Parameter& {
    train::BlockParams& b = p.blocks[l];
    if (lin == "attn_qkv") return b.wqkv;  // GPT-2's fused projection
    if (lin == "attn_q") return b.wq;
    if (lin == "attn_k") return b.wk;
    if (lin == "attn_v") return b.wv;
    if (lin == "attn_output") return b.wo;
    if (lin == "ffn_gate") return b.w_gate;
    if (lin == "ffn_up") return b.w_up;
    return b.w_down;
  };
  return group_sums(m.config, k, [&](int l, const std::string& lin) {
    const train::Parameter& q = param(l, lin);
    Tensor out = Tensor::alloc(DType::F32, q.value.shape);
    const float *w = q.value.f32(), *gr = q.grad.f32();
    for (int64_t i = 0; i < q.numel(); ++i) out.f32()[i] = std::fabs(w[i] * gr[i]);
    return out;
  });
}

LayerScores block_influence(Transformer& model, const calib::CalibSet& calib) {
  SHRINK_CHECK(!calib.seqs.empty(), "block importance needs calibration text (--calib)");
  const ModelConfig& c = model.config();
  const int64_t d = c.dim;
  std::vector<double> cos_sum(c.n_layers, 0.0);
  int64_t tokens = 0;
  size_t max_len = 0;
  for (const auto& s : calib.seqs) max_len = std::max(max_len, s.size());
  KVCache cache = model.new_cache(int(max_len));
  std::vector<float> x, before;
  for (const auto& seq : calib.seqs) {
    const int n = int(seq.size());
    x.resize(size_t(n) * d);
    cache.clear();
    model.embed(seq.data(), n, 0, x.data());
    for (int l = 0; l < c.n_layers; ++l) {
      before = x;
      model.forward_block(l, x.data(), n, cache);
      for (int t = 0; t < n; ++t) {
        double dot = 0, a2 = 0, b2 = 0;
        for (int64_t j = 0; j < d; ++j) {
          const double a = before[t * d + j], b = x[t * d + j];
          dot += a * b, a2 += a * a, b2 += b * b;
        }
        cos_sum[l] += a2 > 0 && b2 > 0 ? dot / std::sqrt(a2 * b2) : 1.0;
      }
    }
    tokens += n;
  }
  LayerScores out(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) out[l] = {1.0 - cos_sum[l] / double(tokens)};
  return out;
}

}  // namespace shrink::prune
