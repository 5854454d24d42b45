// Structured pruning: the groups, the removal plan and the slicing that writes
// the smaller dense model (structured.h).
#include "compress/prune/structured.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "model/lowrank_weight.h"

namespace shrink::prune {

StructKind parse_struct_kind(const std::string& s) {
  if (s == "heads") return StructKind::Heads;
  if (s == "channels") return StructKind::Channels;
  if (s == "layers") return StructKind::Layers;
  fail("unknown structure '", s, "' (known: heads, channels, layers)");
}

const char* struct_kind_name(StructKind k) {
  return k == StructKind::Heads ? "heads" : k == StructKind::Channels ? "channels" : "layers";
}

Importance parse_importance(const std::string& s) {
  if (s == "l1") return Importance::L1;
  if (s == "l2") return Importance::L2;
  if (s == "activation") return Importance::Activation;
  if (s == "taylor") return Importance::Taylor;
  if (s == "block") return Importance::Block;
  fail("unknown importance '", s, "' (known: l1, l2, activation, taylor, block)");
}

const char* importance_name(Importance i) {
  switch (i) {
    case Importance::L1: return "l1";
    case Importance::L2: return "l2";
    case Importance::Activation: return "activation";
    case Importance::Taylor: return "taylor";
    case Importance::Block: return "block";
  }
  return "?";
}

int StructuredPlan::removed_groups() const {
  int n = 0;
  for (const auto& r : removed) n += int(r.size());
  return n;
}

int group_count(const ModelConfig& c, StructKind k, int layer) {
  if (k == StructKind::Heads) return c.kv_heads(layer);
  if (k == StructKind::Channels) return c.ffn_dim(layer);
  return 1;
}

int64_t group_params(const ModelConfig& c, StructKind k, int layer) {
  const int64_t d = c.dim, hd = c.head_dim, r = c.heads(layer) / c.kv_heads(layer);
  const bool gpt2 = c.arch == Arch::GPT2;
  if (k == StructKind::Heads) {
    // q rows and wo columns of r query heads, k and v rows of one KV head (+ biases).
    int64_t p = 2 * r * hd * d + 2 * hd * d;
    if (gpt2 || c.qkv_bias) p += r * hd + 2 * hd;
    return p;
  }
  if (k == StructKind::Channels) return gpt2 ? 2 * d + 1 : 3 * d;
  const int64_t norms = gpt2 ? 4 * d + 2 * d : 2 * d;  // GPT-2: two LayerNorms (w, b), wo and w_down biases
  return c.kv_heads(layer) * group_params(c, StructKind::Heads, layer) +
         c.ffn_dim(layer) * group_params(c, StructKind::Channels, layer) + norms;
}

namespace {

// Groups of `layer` ranked lowest score first (ties: lower index first, for determinism).
std::vector<int> ascending(const std::vector<double>& s) {
  std::vector<int> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return s[a] < s[b]; });
  return idx;
}

void plan_layers(const ModelConfig& c, const LayerScores& scores, double ratio, int n_remove, StructuredPlan& p) {
  const int L = c.n_layers;
  if (n_remove < 0) n_remove = int(std::llround(ratio * L));
  SHRINK_CHECK(n_remove < L, "removing ", n_remove, " of ", L, " layers leaves none");
  std::vector<double> s(L);
  for (int l = 0; l < L; ++l) {
    SHRINK_CHECK(scores[l].size() == 1, "layer scores need one value per layer");
    s[l] = scores[l][0];
  }
  const std::vector<int> order = ascending(s);
  for (int i = 0; i < n_remove; ++i) {
    p.removed[order[i]] = {0};
    p.removed_params += group_params(c, StructKind::Layers, order[i]);
  }
}

void plan_global(const ModelConfig& c, StructKind k, const LayerScores& scores, double ratio, StructuredPlan& p) {
  struct Cand {
    double score;
    int layer, group;
  };
  std::vector<Cand> all;
  for (int l = 0; l < c.n_layers; ++l) {
    double mean = 0;
    for (double x : scores[l]) mean += x;
    mean /= double(scores[l].size());
    for (int g = 0; g < int(scores[l].size()); ++g)
      all.push_back({mean > 0 ? scores[l][g] / mean : 0.0, l, g});
  }
  std::stable_sort(all.begin(), all.end(), [](const Cand& a, const Cand& b) { return a.score < b.score; });
  const double target = ratio * double(p.prunable_params);
  for (const Cand& cand : all) {
    const int64_t gp = group_params(c, k, cand.layer);
    if (double(p.removed_params) + 0.5 * double(gp) > target) break;
    if (int(p.removed[cand.layer].size()) + 1 >= group_count(c, k, cand.layer)) continue;  // keep one per layer
    p.removed[cand.layer].push_back(cand.group);
    p.removed_params += gp;
  }
}

// Every layer loses floor(ratio x its groups), lowest scores first; what that
// leaves of the parameter target (a layer has few heads: 10% of 4 KV groups
// floors to 0) is taken as at most one more group per layer, from the layers
// whose next candidate has the lowest score relative to its layer's mean.
void plan_uniform(const ModelConfig& c, StructKind k, const LayerScores& scores, double ratio, StructuredPlan& p) {
  std::vector<std::vector<int>> order(c.n_layers);
  std::vector<std::pair<double, int>> extra;  // (normalised score of the next candidate, layer)
  for (int l = 0; l < c.n_layers; ++l) {
    const int g = group_count(c, k, l);
    const int n = std::min<int>(g - 1, int(std::floor(ratio * g + 1e-9)));
    order[l] = ascending(scores[l]);
    p.removed[l].assign(order[l].begin(), order[l].begin() + n);
    p.removed_params += n * group_params(c, k, l);
    if (n + 1 < g) {
      double mean = 0;
      for (double x : scores[l]) mean += x;
      mean /= double(g);
      extra.push_back({mean > 0 ? scores[l][order[l][n]] / mean : 0.0, l});
    }
  }
  std::stable_sort(extra.begin(), extra.end());
  const double target = ratio * double(p.prunable_params);
  for (const auto& [score, l] : extra) {
    const int64_t gp = group_params(c, k, l);
    if (double(p.removed_params) + 0.5 * double(gp) > target) break;
    p.removed[l].push_back(order[l][p.removed[l].size()]);
    p.removed_params += gp;
  }
}

}  // namespace

StructuredPlan plan_removal(const ModelConfig& c, StructKind k, const LayerScores& scores, double ratio, bool global,
                            int n_layers_to_remove) {
  SHRINK_CHECK(ratio >= 0 && ratio < 1, "--ratio must be in [0, 1), got ", ratio);
  SHRINK_CHECK(int(scores.size()) == c.n_layers, "scores for ", scores.size(), " layers, the model has ", c.n_layers);
  StructuredPlan p;
  p.kind = k;
  p.removed.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    p.prunable_params += group_count(c, k, l) * group_params(c, k, l);
    if (k != StructKind::Layers)
      SHRINK_CHECK(int(scores[l].size()) == group_count(c, k, l), "layer ", l, ": ", scores[l].size(), " scores for ",
                   group_count(c, k, l), " groups");
  }
  if (k == StructKind::Layers) {
    plan_layers(c, scores, ratio, n_layers_to_remove, p);
  } else if (global) {
    plan_global(c, k, scores, ratio, p);
  } else {
    plan_uniform(c, k, scores, ratio, p);
  }
  for (auto& r : p.removed) std::sort(r.begin(), r.end());
  return p;
}

void round_kept_groups(const ModelConfig& c, const LayerScores& scores, int multiple, StructuredPlan& p) {
  SHRINK_CHECK(multiple >= 1, "the kept-size multiple must be positive, got ", multiple);
  if (multiple == 1 || p.kind == StructKind::Layers) return;
  for (int l = 0; l < c.n_layers; ++l) {
    const int g = group_count(c, p.kind, l), kept = g - int(p.removed[l].size());
    const int want = std::max(multiple, kept / multiple * multiple);
    SHRINK_CHECK(want <= g, "layer ", l, " has ", g, " ", struct_kind_name(p.kind), ", fewer than the multiple ", multiple);
    if (want >= kept) continue;
    // The plan's own choices stay (a global ranking may differ from this layer's order),
    // then the lowest-scored of the rest until g - want are gone.
    std::vector<int> removed = p.removed[l];
    for (int x : ascending(scores[l])) {
      if (int(removed.size()) == g - want) break;
      if (std::find(removed.begin(), removed.end(), x) == removed.end()) removed.push_back(x);
    }
    std::sort(removed.begin(), removed.end());
    p.removed_params += int64_t(removed.size() - p.removed[l].size()) * group_params(c, p.kind, l);
    p.removed[l] = removed;
  }
}

// ------------------------------------------------------------------ slicing

namespace {

// Rows `keep` of a 1-D or 2-D dense tensor (ranges of whole rows), in its dtype.
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& keep) {
  std::vector<int64_t> shape = t.shape;
  shape[0] = int64_t(keep.size());
  Tensor out = Tensor::alloc(t.dtype, shape);
  const int64_t row = t.ndim() == 1 ? dtype_bytes(t.dtype, 1) : dtype_bytes(t.dtype, t.cols());
  for (size_t i = 0; i < keep.size(); ++i)
    std::memcpy(out.ptr<uint8_t>() + i * row, t.ptr<const uint8_t>() + keep[i] * row, row);
  return out;
}

// Columns `keep` of a 2-D dense tensor.
Tensor gather_cols(const Tensor& t, const std::vector<int64_t>& keep) {
  SHRINK_CHECK(t.ndim() == 2, "column slicing needs a 2-D tensor, got ", shape_str(t.shape));
  Tensor out = Tensor::alloc(t.dtype, {t.dim(0), int64_t(keep.size())});
  const int64_t e = dtype_bytes(t.dtype, 1), in_row = t.cols() * e, out_row = int64_t(keep.size()) * e;
  for (int64_t r = 0; r < t.dim(0); ++r) {
    const uint8_t* src = t.ptr<const uint8_t>() + r * in_row;
    uint8_t* dst = out.ptr<uint8_t>() + r * out_row;
    for (size_t i = 0; i < keep.size(); ++i) std::memcpy(dst + i * e, src + keep[i] * e, e);
  }
  return out;
}

// The kept indices of `n` groups of `width` consecutive rows starting at `offset`.
void append_ranges(std::vector<int64_t>& out, const std::vector<int>& kept_groups, int64_t width, int64_t offset) {
  for (int g : kept_groups)
    for (int64_t i = 0; i < width; ++i) out.push_back(offset + g * width + i);
}

std::vector<int> kept_of(int n, const std::vector<int>& removed) {
  std::vector<int> kept;
  for (int g = 0; g < n; ++g)
    if (!std::binary_search(removed.begin(), removed.end(), g)) kept.push_back(g);
  return kept;
}

// Kept query heads of the kept KV groups (r query heads per group).
std::vector<int> query_heads_of(const std::vector<int>& kv_kept, int r) {
  std::vector<int> q;
  for (int g : kv_kept)
    for (int i = 0; i < r; ++i) q.push_back(g * r + i);
  return q;
}

void check_dense(const ModelFile& m, const std::string& name) {
  const Tensor& t = m.get(name);
  SHRINK_CHECK(!is_block_quantized(t.dtype) && (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16),
               m.path, ": structured pruning needs dense F32/F16/BF16 weights; '", name, "' is ", dtype_name(t.dtype),
               " (prune the unquantized model, then quantize)");
}

void slice_heads(ModelFile& m, int l, const std::vector<int>& removed) {
  const ModelConfig& c = m.config;
  const std::string p = "blk." + std::to_string(l) + ".";
  const int64_t hd = c.head_dim;
  const int r = c.heads(l) / c.kv_heads(l);
  const std::vector<int> kv_kept = kept_of(c.kv_heads(l), removed), q_kept = query_heads_of(kv_kept, r);
  std::vector<int64_t> q_rows, kv_rows;
  append_ranges(q_rows, q_kept, hd, 0);
  append_ranges(kv_rows, kv_kept, hd, 0);
  auto rows = [&](const std::string& n, const std::vector<int64_t>& keep) {
    if (const Tensor* t = m.find(n)) m.tensors[n] = gather_rows(*t, keep);
  };
  if (c.arch == Arch::GPT2) {
    std::vector<int64_t> qkv = q_rows;
    append_ranges(qkv, kv_kept, hd, c.q_dim(l));
    append_ranges(qkv, kv_kept, hd, c.q_dim(l) + c.kv_dim(l));
    rows(p + "attn_qkv.weight", qkv), rows(p + "attn_qkv.bias", qkv);
  } else {
    for (const char* kind : {"weight", "bias"}) {
      rows(p + "attn_q." + kind, q_rows);
      rows(p + "attn_k." + kind, kv_rows);
      rows(p + "attn_v." + kind, kv_rows);
    }
  }
  m.tensors[p + "attn_output.weight"] = gather_cols(m.get(p + "attn_output.weight"), q_rows);
}

void slice_channels(ModelFile& m, int l, const std::vector<int>& removed) {
  const std::string p = "blk." + std::to_string(l) + ".";
  std::vector<int64_t> keep;
  append_ranges(keep, kept_of(m.config.ffn_dim(l), removed), 1, 0);
  for (const char* n : {"ffn_gate.weight", "ffn_up.weight", "ffn_up.bias"})
    if (const Tensor* t = m.find(p + n)) m.tensors[p + n] = gather_rows(*t, keep);
  m.tensors[p + "ffn_down.weight"] = gather_cols(m.get(p + "ffn_down.weight"), keep);
}

// Drops the removed blocks' tensors and renumbers the rest blk.0 .. blk.(L'-1).
void drop_layers(ModelFile& m, const std::vector<bool>& drop) {
  std::map<std::string, Tensor> out;
  std::vector<int> new_index(drop.size(), -1);
  for (int l = 0, next = 0; l < int(drop.size()); ++l)
    if (!drop[l]) new_index[l] = next++;
  for (auto& [name, t] : m.tensors) {
    if (name.rfind("blk.", 0) != 0) {
      out[name] = t;
      continue;
    }
    const size_t dot = name.find('.', 4);
    const int l = std::stoi(name.substr(4, dot - 4));
    if (new_index[l] >= 0) out["blk." + std::to_string(new_index[l]) + name.substr(dot)] = t;
  }
  m.tensors = std::move(out);
}

}  // namespace

ModelFile remove_groups(const ModelFile& in, const StructuredPlan& plan) {
  const ModelConfig& c = in.config;
  SHRINK_CHECK(int(plan.removed.size()) == c.n_layers, "the plan is for ", plan.removed.size(), " layers, the model has ",
               c.n_layers);
  SHRINK_CHECK(in.packed.empty() && in.int8.empty(), in.path,
               ": structured pruning needs dense weights (this model has pack-quantized or W8A8 linears)");
  for (const auto& [name, t] : in.tensors) {
    SHRINK_CHECK(name.find(".lr_") == std::string::npos, in.path, ": structured pruning of a low-rank model ('", name,
                 "') is not supported");
    if (name.rfind("blk.", 0) == 0 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 &&
        name.find("norm") == std::string::npos)
      check_dense(in, name);
  }
  ModelFile m = in;
  std::vector<int> heads, kv, ffn;
  for (int l = 0; l < c.n_layers; ++l) heads.push_back(c.heads(l)), kv.push_back(c.kv_heads(l)), ffn.push_back(c.ffn_dim(l));
  if (plan.kind == StructKind::Layers) {
    std::vector<bool> drop(c.n_layers);
    std::vector<int> h2, kv2, f2;
    for (int l = 0; l < c.n_layers; ++l) {
      drop[l] = !plan.removed[l].empty();
      if (!drop[l]) h2.push_back(heads[l]), kv2.push_back(kv[l]), f2.push_back(ffn[l]);
    }
    drop_layers(m, drop);
    m.config.n_layers = int(h2.size());
    m.config.set_layer_sizes(h2, kv2, f2);
  } else {
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& rm = plan.removed[l];
      if (rm.empty()) continue;
      SHRINK_CHECK(int(rm.size()) < group_count(c, plan.kind, l), "layer ", l, ": removing all its ",
                   struct_kind_name(plan.kind), " is not supported");
      if (plan.kind == StructKind::Heads) {
        const int r = heads[l] / kv[l];
        slice_heads(m, l, rm);
        kv[l] -= int(rm.size()), heads[l] = kv[l] * r;
      } else {
        slice_channels(m, l, rm);
        ffn[l] -= int(rm.size());
      }
    }
    const int head_dim = c.head_dim;
    m.config.set_layer_sizes(heads, kv, ffn);
    m.config.head_dim = head_dim;
  }
  m.config.validate(in.path);
  check_model_tensors(m);
  return m;
}

}  // namespace shrink::prune
