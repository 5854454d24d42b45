#include "compress/prune/prune.h"

#include <algorithm>
#include <cmath>

#include "compress/calib/obs.h"
#include "compress/calib/stats.h"
#include "core/cpu.h"
#include "core/error.h"

namespace shrink::prune {

namespace {

// Every Linear that is pruned: all but the output head (last in linears()).
std::vector<Linear*> block_linears(Transformer& model) {
  std::vector<Linear*> ls = model.linears();
  ls.pop_back();
  return ls;
}

Tensor dense_f32(const Linear& l) {
  SHRINK_CHECK(dynamic_cast<const DenseWeight*>(&l.weight()), l.name(), " is stored as ", l.weight().kind(),
               ": pruning needs a dense model (F32/F16/BF16); prune first, then quantize");
  return l.weight().to_dense_f32();
}

// The pruned f32 weight back in the Linear, in the dtype the layer had (zeros are exact in f16/bf16).
void store(Linear& l, const Tensor& pruned) {
  const DType dt = static_cast<const DenseWeight&>(l.weight()).tensor().dtype;
  l.set_weight(std::make_shared<DenseWeight>(dt == DType::F32 ? pruned : pruned.to(dt)));
}

// Magnitude over the whole model: the |w| at which round(s * total) weights
// fall below, and how many weights equal to it are still to be pruned (given
// out in forward order, so the count is exact).
struct GlobalCut {
  float threshold = 0;
  int64_t ties = 0;
};

GlobalCut global_cut(const std::vector<Linear*>& ls, double ratio) {
  std::vector<float> mags;
  for (const Linear* l : ls) {
    const Tensor w = dense_f32(*l);
    for (int64_t i = 0; i < w.numel(); ++i) mags.push_back(std::fabs(w.f32()[i]));
  }
  const auto k = static_cast<int64_t>(std::llround(ratio * double(mags.size())));
  GlobalCut cut;
  if (k == 0) return {-1.0f, 0};
  std::nth_element(mags.begin(), mags.begin() + (k - 1), mags.end());
  cut.threshold = mags[k - 1];
  const int64_t below = std::count_if(mags.begin(), mags.end(), [&](float v) { return v < cut.threshold; });
  cut.ties = k - below;
  return cut;
}

Tensor prune_global(const Tensor& w, GlobalCut& cut) {
  Tensor out = w.clone();
  float* v = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i) {
    const float a = std::fabs(v[i]);
    if (a < cut.threshold) {
      v[i] = 0.0f;
    } else if (a == cut.threshold && cut.ties > 0) {
      v[i] = 0.0f;
      --cut.ties;
    }
  }
  return out;
}

// Fills the diagnostic fields of r for w pruned to `pruned` (h: its Hessian or empty).
void diagnose(const Tensor& w, const Tensor& pruned, const std::vector<float>& h, const PruneOptions& opt,
              PruneLayerReport& r) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  for (int64_t row = 0; row < rows; ++row)
    r.max_row_sparsity = std::max(r.max_row_sparsity, zero_fraction(pruned.f32() + row * cols, cols));
  if (opt.method != "magnitude") {
    const Tensor mag = prune_by_score(w, nullptr, opt.pattern, MaskScope::Layer);
    int64_t both = 0, pruned_count = 0;
    for (int64_t i = 0; i < w.numel(); ++i)
      if (pruned.f32()[i] == 0) ++pruned_count, both += mag.f32()[i] == 0;
    r.magnitude_overlap = pruned_count ? double(both) / double(pruned_count) : 1.0;
  }
  if (!h.empty()) {
    std::vector<float> norms(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) norms[c] = std::sqrt(std::max(h[c * cols + c], 0.0f));
    const float max = *std::max_element(norms.begin(), norms.end());
    std::nth_element(norms.begin(), norms.begin() + cols / 2, norms.end());
    r.input_norm_spread = norms[cols / 2] > 0 ? max / norms[cols / 2] : -1;
  }
}

// The rewrite every path shares: prune one Linear (h: its Hessian, or empty without data).
class LayerPruner {
 public:
  LayerPruner(const PruneOptions& opt, PruneReport& rep, GlobalCut* cut) : opt_(opt), rep_(rep), cut_(cut) {}

  void prune(Linear& l, const std::vector<float>& h) {
    const double t0 = now_seconds();
    const Tensor w = dense_f32(l);
    Tensor pruned;
    std::shared_ptr<WeightRepr> quantized;  // joint sparsity + quantization
    if (opt_.method == "sparsegpt" && opt_.sparsegpt.quant) {
      pruned = sparsegpt_joint(w, h, quantized);
    } else if (opt_.method == "sparsegpt") {
      pruned = sparsegpt_prune(w, h, opt_.pattern, opt_.sparsegpt).weight;
    } else if (cut_) {
      pruned = prune_global(w, *cut_);
    } else if (opt_.method == "wanda") {
      std::vector<float> diag(static_cast<size_t>(w.dim(1)));
      for (int64_t c = 0; c < w.dim(1); ++c) diag[c] = h[c * w.dim(1) + c];  // 2/N ||X_c||²
      pruned = prune_by_score(w, diag.data(), opt_.pattern, MaskScope::Row);
    } else {
      pruned = prune_by_score(w, nullptr, opt_.pattern, MaskScope::Layer);
    }
    if (quantized)
      l.set_weight(quantized);
    else
      store(l, pruned);
    PruneLayerReport r;
    r.name = l.name(), r.rows = w.dim(0), r.cols = w.dim(1);
    r.sparsity = zero_fraction(pruned.f32(), pruned.numel());
    r.weight_rel_err = calib::relative_weight_error(w, pruned);
    if (!h.empty()) r.output_rel_err = calib::relative_output_error(w, pruned, h);
    diagnose(w, pruned, h, opt_, r);
    r.seconds = now_seconds() - t0;
    rep_.pruned_params += pruned.numel();
    rep_.zeros += std::llround(r.sparsity * double(pruned.numel()));
    rep_.layers.push_back(r);
  }

 private:
  // SparseGPT with quantization in the sweep, to the target llama-quantize would
  // fall back to when rows do not split into its blocks (quant::fit_target);
  // a dense fallback (F16) prunes as usual and converts. Returns the dequantized weight.
  Tensor sparsegpt_joint(const Tensor& w, const std::vector<float>& h, std::shared_ptr<WeightRepr>& quantized) {
    SparseGptOptions o = opt_.sparsegpt;
    o.quant = quant::fit_target(*o.quant, w.dim(1));
    if (o.quant->is_dense()) {
      const Tensor pruned = sparsegpt_prune(w, h, opt_.pattern, o).weight;
      quantized = quant::quantize_matrix(*o.quant, pruned, nullptr);
      return quantized->to_dense_f32();
    }
    SparseGptResult res = sparsegpt_prune(w, h, opt_.pattern, o);
    quantized = res.quantized;
    return res.weight;
  }

  const PruneOptions& opt_;
  PruneReport& rep_;
  GlobalCut* cut_;
};

// On the calibration driver: each group's Hessian, then its Linears pruned.
class CalibratedPrune : public calib::BlockMethod {
 public:
  explicit CalibratedPrune(LayerPruner& pruner) : pruner_(pruner) {}
  void observe(const Linear& l, const float* x, int64_t n) override { hessians_.observe(l, x, n); }
  void rewrite(Transformer&, int, const std::vector<Linear*>& group) override {
    for (Linear* l : group) pruner_.prune(*l, hessians_.of(*l).matrix());
    hessians_.clear();
  }

 private:
  LayerPruner& pruner_;
  calib::GroupHessians hessians_;
};

}  // namespace

Tensor prune_by_score(const Tensor& w, const float* col_sq, const SparsityPattern& p, MaskScope scope) {
  SHRINK_CHECK(w.dtype == DType::F32 && w.ndim() == 2, "pruning needs a 2-D f32 weight");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Tensor out = w.clone();
  float* v = out.f32();
  std::vector<float> score(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      score[r * cols + c] = std::fabs(v[r * cols + c]) * (col_sq ? std::sqrt(col_sq[c]) : 1.0f);
  const std::vector<uint8_t> mask = select_mask(score.data(), rows, cols, p, scope);
  for (int64_t i = 0; i < rows * cols; ++i)
    if (mask[i]) v[i] = 0.0f;
  return out;
}

void check_options(const PruneOptions& opt, bool have_calib) {
  const std::string& m = opt.method;
  SHRINK_CHECK(m == "magnitude" || m == "wanda" || m == "sparsegpt", "unknown pruning method '", m,
               "' (magnitude, wanda, sparsegpt)");
  SHRINK_CHECK(opt.pattern.is_nm() || (opt.pattern.ratio > 0 && opt.pattern.ratio < 1),
               "sparsity ", opt.pattern.ratio, " is outside (0, 1)");
  SHRINK_CHECK(m == "magnitude" || have_calib, m, " needs calibration text: --calib FILE");
  SHRINK_CHECK(!opt.global || m == "magnitude", "--global is a magnitude option (Wanda compares within rows, "
               "SparseGPT within column blocks)");
  SHRINK_CHECK(!opt.sparsegpt.quant || m == "sparsegpt", "--quant-type (joint sparsity + quantization) is a "
               "SparseGPT option; for ", m, ", prune then `shrink quantize`");
  SHRINK_CHECK(!opt.sparsegpt.quant || joint_zero_exact(*opt.sparsegpt.quant), "--quant-type ",
               opt.sparsegpt.quant ? opt.sparsegpt.quant->name() : "", " cannot hold a pruned weight as exactly 0 "
               "(its blocks have a free minimum); use q4_0, q5_0, q8_0, q3_k, q6_k or a group format (int4g128, ...)");
  SHRINK_CHECK(!opt.global || !opt.pattern.is_nm(), "--global picks one threshold over the model: it applies to "
               "unstructured sparsity, not ", opt.pattern.name());
}

PruneReport prune_model(Transformer& model, const calib::CalibSet& calib, const PruneOptions& opt,
                        const PruneProgress& progress) {
  const bool have_calib = !calib.seqs.empty();
  check_options(opt, have_calib);
  const double t0 = now_seconds();
  PruneReport rep;
  GlobalCut cut;
  if (opt.global) cut = global_cut(block_linears(model), opt.pattern.ratio);
  LayerPruner pruner(opt, rep, opt.global ? &cut : nullptr);
  if (have_calib) {
    rep.calib_tokens = calib.tokens();
    CalibratedPrune method(pruner);
    calib::DriverOptions dopt;
    dopt.progress = progress;
    calib::run_blockwise(model, calib, method, dopt);
  } else {
    const std::vector<Linear*> ls = block_linears(model);
    const int n_layers = model.config().n_layers;
    for (size_t i = 0; i < ls.size(); ++i) {
      if (progress) progress(static_cast<int>(i * n_layers / ls.size()), n_layers, ls[i]->name());
      pruner.prune(*ls[i], {});
    }
  }
  rep.seconds = now_seconds() - t0;
  return rep;
}

}  // namespace shrink::prune
