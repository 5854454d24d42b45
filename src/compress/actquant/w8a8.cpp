#include "compress/actquant/w8a8.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/cpu.h"
#include "core/error.h"
#include "model/int8_weight.h"

namespace shrink::actquant {

namespace {

ActLayerReport replace(Linear& l, Int8Activations act, float act_max, double t0) {
  const Tensor w = l.weight().to_dense_f32();
  l.set_weight(std::make_shared<Int8Weight>(w, act));
  const Tensor d = l.weight().to_dense_f32();
  double num = 0, den = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double e = double(w.f32()[i]) - d.f32()[i];
    num += e * e, den += double(w.f32()[i]) * w.f32()[i];
  }
  ActLayerReport r;
  r.name = l.name(), r.kind = l.weight().kind();
  r.rows = l.out_features(), r.cols = l.in_features(), r.bytes = l.weight().bytes();
  r.weight_rel_err = den > 0 ? num / den : 0;
  r.act_scale = act.static_scale, r.act_max = act_max;
  r.seconds = now_seconds() - t0;
  return r;
}

// Static ranges: one observer per group input (the group's Linears share it).
class StaticRangeMethod : public calib::BlockMethod {
 public:
  StaticRangeMethod(const ActQuantOptions& opt, ActQuantReport& rep) : opt_(opt), rep_(rep) {}
  void begin_group(Transformer&, int, const std::vector<Linear*>& group) override {
    first_ = group.front();
    observer_ = make_observer(opt_.observer);
    max_ = 0;
  }
  void observe(const Linear& l, const float* x, int64_t n) override {
    if (&l != first_) return;
    const int64_t m = n * l.in_features();
    observer_->observe(x, m);
    for (int64_t i = 0; i < m; ++i) max_ = std::max(max_, std::fabs(x[i]));
  }
  void rewrite(Transformer&, int, const std::vector<Linear*>& group) override {
    const double t0 = now_seconds();
    const QParams p = observer_->params();
    SHRINK_CHECK(p.zero == 0, "W8A8 uses symmetric activation scales (the observer gave a zero point)");
    Int8Activations act;
    act.static_scale = p.scale > 0 ? p.scale : 1.0f;  // an input that is always zero
    for (Linear* l : group) rep_.layers.push_back(replace(*l, act, max_, t0));
  }

 private:
  const ActQuantOptions& opt_;
  ActQuantReport& rep_;
  const Linear* first_ = nullptr;
  std::unique_ptr<Observer> observer_;
  float max_ = 0;
};

void per_token_all(Transformer& model, Int8Activations act, ActQuantReport& rep) {
  for (int layer = 0; layer < model.config().n_layers; ++layer)
    for (const auto& group : calib::block_groups(model, layer))
      for (Linear* l : group) rep.layers.push_back(replace(*l, act, 0, now_seconds()));
}

}  // namespace

bool is_activation_method(const std::string& m) {
  return m == "dynamic" || m == "w8a8" || m == "smoothquant" || m == "llm-int8";
}

bool needs_calibration(const ActQuantOptions& opt) {
  return opt.method == "w8a8" || opt.method == "smoothquant";
}

ActQuantReport quantize_activations(Transformer& model, const calib::CalibSet& calib, const ActQuantOptions& opt,
                                    const std::function<void(int, int, const std::string&)>& progress) {
  SHRINK_CHECK(is_activation_method(opt.method), "unknown activation quantization method '", opt.method,
               "' (dynamic, w8a8, smoothquant, llm-int8)");
  SHRINK_CHECK(!needs_calibration(opt) || !calib.seqs.empty(), opt.method, " needs calibration text (--calib)");
  SHRINK_CHECK(opt.observer.bits == 8, "W8A8 activations are 8-bit (the observer asked for ", opt.observer.bits, ")");
  const double t0 = now_seconds();
  ActQuantReport rep;
  rep.calib_tokens = needs_calibration(opt) ? calib.tokens() : 0;
  calib::DriverOptions dopt;
  dopt.progress = progress;
  if (opt.method == "smoothquant") {
    SmoothOptions so;
    so.alpha = opt.alpha;
    so.all_groups = opt.smooth_all;
    so.search_alpha = opt.search_alpha;
    rep.smoothed = smooth_model(model, calib, so, dopt);
  }
  if (opt.method == "dynamic" || (opt.method == "smoothquant" && opt.per_token)) {
    per_token_all(model, {}, rep);
  } else if (opt.method == "llm-int8") {
    SHRINK_CHECK(opt.outlier_threshold > 0, "llm-int8 needs an outlier threshold > 0");
    Int8Activations act;
    act.outlier_threshold = opt.outlier_threshold;
    per_token_all(model, act, rep);
  } else {
    SHRINK_CHECK(opt.observer.symmetric, "W8A8 activation scales are symmetric (int8 x int8 products)");
    StaticRangeMethod m(opt, rep);
    calib::run_blockwise(model, calib, m, dopt);
  }
  rep.seconds = now_seconds() - t0;
  return rep;
}

}  // namespace shrink::actquant
