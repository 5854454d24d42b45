#include "train/qat.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/group_gemv.h"
#include "kernels/qdot.h"
#include "kernels/quant_blocks.h"
#include "model/group_weight.h"

namespace shrink::train {

bool qat_lsq_supports(const quant::QuantTarget& t) {
  if (t.is_sign()) return false;
  if (t.is_block) return t.block == DType::Q4_0;
  const quant::QuantSpec& s = t.spec;
  return s.code == quant::Code::Int && s.symmetric && !s.clip_search && s.group >= 0 && (s.group == 0 || s.group >= 8);
}

void check_qat_target(const quant::QuantTarget& t, bool lsq) {
  SHRINK_CHECK(!t.is_sign(), "QAT cannot train toward ", t.name(),
               ": OneBit's scales are fitted to the whole matrix (SVID), not rounded per group");
  SHRINK_CHECK(!t.is_dense(), t.name(), " is not a quantized format: nothing to train toward");
  SHRINK_CHECK(!lsq || qat_lsq_supports(t), "--lsq learns one scale per group and exports it exactly only into q4_0 "
               "or a symmetric integer group format (int4g32sym, int2g64sym, ...); ", t.name(),
               " has other scales (mins, sub-block scales, zero points or clipping): train it without --lsq");
}

Tensor rtn_round_trip(const quant::QuantTarget& t, const Tensor& w, bool embedding) {
  if (embedding) return w.to(t.block).to(DType::F32);
  return quant::quantize_matrix(t, w, nullptr)->to_dense_f32();
}

Var fake_quant_target(Var w, const quant::QuantTarget& t, bool embedding) {
  Var y = w->graph->make(rtn_round_trip(t, w->value, embedding), {w});
  if (y->requires_grad)
    y->backward = [=] {
      // Straight-through: the rounding (grid recomputed from the weights) is treated as the identity.
      const int64_t n = w->value.numel();
      for (int64_t i = 0; i < n; ++i) w->g()[i] += y->g()[i];
    };
  return y;
}

Var fake_quant_rows(Var x, const std::function<void(const float*, float*)>& round_row) {
  const int64_t cols = x->value.shape.back(), rows = x->value.numel() / cols;
  Tensor r = Tensor::alloc(DType::F32, x->value.shape);
  for (int64_t i = 0; i < rows; ++i) round_row(x->value.f32() + i * cols, r.f32() + i * cols);
  Var y = x->graph->make(std::move(r), {x});
  if (y->requires_grad)
    y->backward = [=] {
      const int64_t n = x->value.numel();
      for (int64_t i = 0; i < n; ++i) x->g()[i] += y->g()[i];
    };
  return y;
}

QatQuantizer::InputRounding QatQuantizer::runtime_rounding(const quant::QuantTarget& t, const Tensor& w) {
  const int64_t cols = w.dim(1);
  if (t.is_block) {
    if (!kernels::qdot_supported(t.block)) return {};  // dense fallbacks (F16, BF16) multiply f32
    const DType type = t.block;
    return [type, cols](const float* x, float* out) {
      thread_local std::vector<uint8_t> act;  // one scratch buffer, not one allocation per row
      act.resize(size_t(kernels::qdot_act_bytes(type, cols)));
      kernels::quantize_act(type, x, act.data(), cols);
      kernels::dequantize_act(type, act.data(), out, cols);
    };
  }
  std::shared_ptr<const WeightRepr> q = quant::quantize_matrix(t, w, nullptr);
  const auto* g = dynamic_cast<const GroupQuantWeight*>(q.get());
  if (!g || !kernels::group_uses_q8(g->view())) return {};
  return [q, g](const float* x, float* out) { kernels::group_round_act(g->view(), x, out); };
}

namespace {

// Q4_0's RTN steps: each block's signed f16 d from ggml's quantizer.
Tensor q4_0_steps(const Tensor& w) {
  const int64_t rows = w.dim(0), nb = w.dim(1) / kernels::kQK;
  const auto q = quant::quantize_matrix(quant::QuantTarget::of_block(DType::Q4_0), w, nullptr);
  const Tensor& blocks = dynamic_cast<const BlockWeight&>(*q).tensor();
  const auto* b = static_cast<const kernels::BlockQ4_0*>(blocks.data);
  Tensor steps = Tensor::alloc(DType::F32, {rows, nb});
  for (int64_t i = 0; i < rows * nb; ++i) steps.f32()[i] = f16_to_f32(b[i].d);
  return steps;
}

}  // namespace

QatQuantizer::QatQuantizer(TransformerParams& model, const quant::QuantizeOptions& opt, bool lsq, QatActivations act) {
  check_qat_target(opt.target, lsq);
  SHRINK_CHECK(opt.per_layer.empty(), "QAT takes one target for the block Linears (no per-layer mix)");
  std::vector<std::string> lsq_names;
  for (Parameter* w : model.linears()) {
    const bool head = linear_role(w->name) == "head";
    if (head && !opt.quantize_head) continue;
    Entry e;
    // Rows that do not split into the type's blocks fall back as in `shrink quantize` (F16 included):
    // such a tensor trains through its fallback's round trip, without LSQ.
    e.target = quant::fit_target(head ? opt.head : opt.target, w->value.dim(1));
    e.lsq = lsq && !head && e.target.name() == opt.target.name();
    if (e.lsq) lsq_names.push_back(w->name);
    if (act == QatActivations::Runtime) e.round_input = runtime_rounding(e.target, w->value);
    plan_[w->name] = e;
    order_.push_back(w->name);
  }
  if (opt.quantize_embed) {  // tied: the table is the head too, in the head's type (type_options)
    SHRINK_CHECK(opt.embed.is_block, "the token embedding can only be stored in a ggml type, not ", opt.embed.name());
    Entry e;
    e.target = quant::fit_target(opt.embed, model.tok_embd.value.dim(1));
    e.embedding = true;
    // The table's rows are the tied head's rows: its input is rounded as that head's product rounds it.
    if (act == QatActivations::Runtime && model.cfg.tied_embeddings)
      e.round_input = runtime_rounding(e.target, model.tok_embd.value);
    if (!e.target.is_dense()) {
      plan_[model.tok_embd.name] = e;
      order_.insert(order_.begin(), model.tok_embd.name);
    }
  }
  if (lsq_names.empty()) return;
  q4_0_ = opt.target.is_block;  // qat_lsq_supports: the only block type is Q4_0
  FakeQuantConfig fc;
  fc.bits = q4_0_ ? 4 : opt.target.spec.bits;
  fc.group = q4_0_ ? kernels::kQK : opt.target.spec.group;
  fc.lsq = true;
  fc.f16_scales = q4_0_;
  fc.names = lsq_names;
  lsq_ = std::make_unique<FakeQuant>(model, fc);
  if (q4_0_)  // start at ggml's RTN grid (signed d), not shrink's int4 absmax steps
    for (Parameter* w : model.linears())
      if (lsq_->covers(w->name)) lsq_->steps(w->name).value = q4_0_steps(w->value);
}

Var QatQuantizer::apply(Graph& g, const std::string& name, Var w) {
  const auto it = plan_.find(name);
  SHRINK_CHECK(it != plan_.end(), "QAT does not cover ", name);
  if (it->second.lsq) return lsq_->apply(g, name, w);
  return fake_quant_target(w, it->second.target, it->second.embedding);
}

Var QatQuantizer::apply_input(Graph&, const std::string& name, Var x) {
  const auto it = plan_.find(name);
  SHRINK_CHECK(it != plan_.end(), "QAT does not cover ", name);
  return it->second.round_input ? fake_quant_rows(x, it->second.round_input) : x;
}

std::vector<std::pair<std::string, std::string>> QatQuantizer::plan() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& name : order_) {
    const Entry& e = plan_.at(name);
    out.emplace_back(name, e.target.name() + (e.lsq ? " lsq" : " rtn") + (e.round_input ? " +act" : ""));
  }
  return out;
}

void QatQuantizer::start_from(TransformerParams& model, Transformer& q) {
  std::map<std::string, const Linear*> by_name;
  for (Linear* l : q.linears()) by_name[l->name() + ".weight"] = l;
  for (Parameter* w : model.linears()) {
    const auto it = plan_.find(w->name);
    if (it == plan_.end() || linear_role(w->name) == "head") continue;
    const Linear& l = *by_name.at(w->name);
    const Tensor deq = l.weight().to_dense_f32();
    SHRINK_CHECK(deq.shape == w->value.shape, w->name, ": the starting model's shape differs");
    std::copy(deq.f32(), deq.f32() + deq.numel(), w->value.f32());
    if (!it->second.lsq) continue;
    Tensor& steps = lsq_->steps(w->name).value;
    if (q4_0_) {
      const auto* b = dynamic_cast<const BlockWeight*>(&l.weight());
      SHRINK_CHECK(b && b->tensor().dtype == DType::Q4_0, w->name, ": the starting model is not Q4_0 there");
      const auto* blocks = static_cast<const kernels::BlockQ4_0*>(b->tensor().data);
      for (int64_t i = 0; i < steps.numel(); ++i) steps.f32()[i] = f16_to_f32(blocks[i].d);
    } else {
      const auto* gq = dynamic_cast<const GroupQuantWeight*>(&l.weight());
      SHRINK_CHECK(gq && int64_t(gq->scales().size()) == steps.numel() && gq->spec().name() == lsq_->spec().name(),
                   w->name, ": the starting model is not ", lsq_->spec().name(), " there");
      std::copy(gq->scales().begin(), gq->scales().end(), steps.f32());
    }
  }
}

std::unique_ptr<Transformer> QatQuantizer::export_model(TransformerParams& p, ModelFile& base) const {
  SHRINK_CHECK(base.packed.empty() && base.int8.empty(), "QAT exports from a dense model file");
  base.config = p.cfg;
  for (Parameter* q : p.all()) base.tensors[q->name] = q->value;
  auto model = std::make_unique<Transformer>(base);
  std::map<std::string, Parameter*> by_name;
  for (Parameter* w : p.linears()) by_name[w->name] = w;
  for (Linear* l : model->linears()) {
    const auto it = plan_.find(l->name() + ".weight");
    if (it == plan_.end()) continue;
    const Parameter& w = *by_name.at(it->first);
    const Entry& e = it->second;
    if (e.lsq && q4_0_)
      l->set_weight(make_weight(lsq_->export_q4_0(w)));
    else if (e.lsq)
      l->set_weight(lsq_->export_weight(w));
    else
      l->set_weight(quant::quantize_matrix(e.target, w.value, nullptr));
  }
  if (const auto it = plan_.find(p.tok_embd.name); it != plan_.end())
    model->set_token_embedding(p.tok_embd.value.to(it->second.target.block));
  return model;
}

GraphPerplexity graph_perplexity(TransformerParams& p, const GraphOptions& opt, const std::vector<int32_t>& tokens,
                                 int n_ctx, int chunks, int32_t bos) {
  SHRINK_CHECK(n_ctx >= 4, "context size ", n_ctx, " is too small (need >= 4)");
  const int max_chunks = int(tokens.size() / size_t(n_ctx));
  GraphPerplexity r;
  r.chunks = chunks < 0 ? max_chunks : std::min(chunks, max_chunks);
  SHRINK_CHECK(r.chunks > 0, "text has ", tokens.size(), " tokens: fewer than one window of ", n_ctx);
  GraphOptions o = opt;
  o.freeze_base = true;  // forward only
  const int64_t vocab = p.cfg.vocab_size;
  double sum = 0;
  for (int c = 0; c < r.chunks; ++c) {
    std::vector<int32_t> window(tokens.begin() + int64_t(c) * n_ctx, tokens.begin() + int64_t(c + 1) * n_ctx);
    window[0] = bos;
    Graph g;
    const Tensor& logits = model_logits(g, p, window, n_ctx, o)->value;
    for (int j = n_ctx / 2; j < n_ctx - 1; ++j) {  // eval::perplexity's scored positions, its double log-softmax
      const float* row = logits.f32() + int64_t(j) * vocab;
      const double mx = *std::max_element(row, row + vocab);
      double z = 0;
      for (int64_t v = 0; v < vocab; ++v) z += std::exp(double(row[v]) - mx);
      sum += mx + std::log(z) - double(row[tokens[int64_t(c) * n_ctx + j + 1]]);
      ++r.scored;
    }
  }
  r.nll = sum / double(r.scored);
  r.ppl = std::exp(r.nll);
  return r;
}

}  // namespace shrink::train
