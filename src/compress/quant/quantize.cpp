#include "compress/quant/quantize.h"

#include <cmath>
#include <memory>

#include "compress/calib/stats.h"
#include "compress/quant/awq.h"
#include "core/cpu.h"
#include "core/error.h"

namespace shrink::quant {

namespace {

bool head_is_tied(Transformer& m) { return m.config().tied_embeddings; }

}  // namespace

QuantizeOptions type_options(const QuantTarget& t, bool tied_embeddings) {
  QuantizeOptions opt;
  opt.target = t;
  if (!t.is_block)
    opt.head = QuantTarget::parse("int8ch");
  else if (t.is_dense() || t.block == DType::Q8_0)
    opt.head = t;
  else
    opt.head = QuantTarget::of_block(DType::Q6_K);
  opt.quantize_embed = t.is_block && !t.is_dense();
  opt.embed = tied_embeddings ? opt.head : t;
  return opt;
}

QuantTarget layer_target(const QuantizeOptions& opt, const Linear& l, bool head) {
  auto it = opt.per_layer.find(l.name());
  const QuantTarget& t = it != opt.per_layer.end() ? it->second : head ? opt.head : opt.target;
  return fit_target(t, l.in_features());
}

LayerReport layer_report(const Linear& l, const Tensor& w, const QuantTarget& t, double seconds) {
  LayerReport r;
  r.name = l.name(), r.type = t.name();
  r.rows = l.out_features(), r.cols = l.in_features(), r.bytes = l.weight().bytes();
  const Tensor q = l.weight().to_dense_f32();
  r.weight_rel_err = calib::relative_weight_error(w, q);
  r.seconds = seconds;
  return r;
}

namespace {

void quantize_rtn(Transformer& model, const QuantizeOptions& opt, const std::map<std::string, std::vector<float>>* imp,
                  QuantizeReport& rep, const LayerProgress& progress) {
  std::vector<Linear*> ls = model.linears();
  const int n_layers = model.config().n_layers;
  for (size_t i = 0; i < ls.size(); ++i) {
    Linear& l = *ls[i];
    const bool head = i + 1 == ls.size();
    if (head && (!opt.quantize_head || head_is_tied(model))) continue;
    if (progress) progress(head ? n_layers : static_cast<int>(i * n_layers / ls.size()), n_layers, l.name());
    const double t0 = now_seconds();
    const QuantTarget t = layer_target(opt, l, head);
    const Tensor w = l.weight().to_dense_f32();
    const float* importance = nullptr;
    if (imp) {
      // As llama-quantize: a Linear the importance matrix does not cover (the
      // head, in files made without --process-output) is rounded plainly.
      auto it = imp->find(l.name());
      if (it != imp->end()) importance = it->second.data();
    }
    l.set_weight(quantize_matrix(t, w, importance));
    rep.layers.push_back(layer_report(l, w, t, now_seconds() - t0));
  }
}

// The token embedding: rows are only looked up, so plain rounding (no data)
// as llama-quantize does (its imatrix has no entry for the table).
void quantize_embedding(Transformer& model, const QuantizeOptions& opt, QuantizeReport& rep) {
  const double t0 = now_seconds();
  const Tensor& e = model.token_embedding();
  SHRINK_CHECK(opt.embed.is_block, "the token embedding can only be stored in a ggml type, not ", opt.embed.name());
  const QuantTarget t = fit_target(opt.embed, e.dim(1));
  if (t.block == e.dtype) return;
  const Tensor w = e.to(DType::F32);
  model.set_token_embedding(w.to(t.block));
  LayerReport r;
  r.name = "token_embd", r.type = t.name(), r.rows = e.dim(0), r.cols = e.dim(1);
  r.bytes = model.token_embedding().nbytes();
  const Tensor q = model.token_embedding().to(DType::F32);
  r.weight_rel_err = calib::relative_weight_error(w, q);
  r.seconds = now_seconds() - t0;
  rep.layers.push_back(r);
}

class GptqMethod : public calib::BlockMethod {
 public:
  GptqMethod(const QuantizeOptions& opt, QuantizeReport& rep, bool head) : opt_(opt), rep_(rep), head_(head) {}

  void observe(const Linear& l, const float* x, int64_t n) override { hessians_.observe(l, x, n); }

  void rewrite(Transformer& model, int layer, const std::vector<Linear*>& group) override {
    const bool head = layer == model.config().n_layers;
    for (Linear* l : group) {
      const double t0 = now_seconds();
      const QuantTarget t = layer_target(opt_, *l, head);
      const Tensor w = l->weight().to_dense_f32();
      const std::vector<float> h = hessians_.of(*l).matrix();
      if (t.is_dense())
        l->set_weight(quantize_matrix(t, w, nullptr));
      else
        l->set_weight(gptq_quantize(w, h, t, opt_.gptq).weight);
      LayerReport r = layer_report(*l, w, t, now_seconds() - t0);
      r.output_rel_err = relative_output_error(w, l->weight().to_dense_f32(), h);
      rep_.layers.push_back(r);
    }
    hessians_.clear();
  }
  bool wants_head() const override { return head_; }

 private:
  const QuantizeOptions& opt_;
  QuantizeReport& rep_;
  bool head_;
  calib::GroupHessians hessians_;
};

}  // namespace

std::map<std::string, std::vector<float>> collect_importance(Transformer& model, const calib::CalibSet& calib) {
  std::map<std::string, calib::ColumnStats> stats;
  LinearInputHook saved = model.hook;
  model.hook = [&](const Linear& l, const float* x, int64_t n) {
    auto it = stats.try_emplace(l.name(), l.in_features()).first;
    it->second.add(x, n);
  };
  int max_len = 0;
  for (const auto& s : calib.seqs) max_len = std::max<int>(max_len, static_cast<int>(s.size()));
  KVCache cache = model.new_cache(max_len);
  std::vector<float> logits;
  try {
    for (const auto& s : calib.seqs) {
      cache.clear();
      // All positions' logits, so the head sees every token's input, not only the last.
      logits.resize(s.size() * size_t(model.config().vocab_size));
      model.forward(s.data(), static_cast<int>(s.size()), cache, logits.data(), true);
    }
  } catch (...) {
    model.hook = saved;
    throw;
  }
  model.hook = saved;
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, st] : stats) out[name] = st.mean_sq();
  return out;
}

QuantizeReport quantize_model(Transformer& model, const calib::CalibSet& calib, const QuantizeOptions& opt,
                              const LayerProgress& progress) {
  QuantizeReport rep;
  rep.method = opt.method;
  rep.target = opt.target.name();
  rep.calib_tokens = opt.method == "rtn" ? 0 : calib.tokens();
  const double t0 = now_seconds();
  const bool head = opt.quantize_head && !head_is_tied(model);
  calib::DriverOptions dopt;
  dopt.progress = progress;
  if (opt.method == "rtn") {
    quantize_rtn(model, opt, nullptr, rep, progress);
  } else if (opt.method == "imatrix") {
    SHRINK_CHECK(!calib.seqs.empty() || opt.importance, "imatrix needs calibration text (--calib) or an imatrix file");
    const auto imp = opt.importance ? *opt.importance : collect_importance(model, calib);
    quantize_rtn(model, opt, &imp, rep, progress);
  } else if (opt.method == "gptq") {
    SHRINK_CHECK(!calib.seqs.empty(), "gptq needs calibration text (--calib)");
    GptqMethod m(opt, rep, head);
    calib::run_blockwise(model, calib, m, dopt);
  } else if (opt.method == "awq") {
    SHRINK_CHECK(!calib.seqs.empty(), "awq needs calibration text (--calib)");
    AwqMethod m(opt, rep, head, calib.tokens());
    calib::run_blockwise(model, calib, m, dopt);
  } else {
    fail("unknown quantization method '", opt.method, "' (rtn, imatrix, gptq, awq)");
  }
  if (opt.quantize_embed) quantize_embedding(model, opt, rep);
  rep.seconds = now_seconds() - t0;
  return rep;
}

}  // namespace shrink::quant
