// Model-level factorization: which rank each Linear gets, the calibration
// driver's BlockMethod for ASVD / SVD-LLM, and the per-layer report.
#include <algorithm>
#include <exception>
#include <memory>

#include "compress/calib/stats.h"
#include "compress/lowrank/lowrank.h"
#include "core/cpu.h"
#include "core/error.h"
#include "model/lowrank_weight.h"

namespace shrink::lowrank {

namespace {

double layer_ratio(const FactorizeOptions& opt, const std::string& name) {
  double r = opt.ratio;
  for (const auto& [pattern, ratio] : opt.layer_ratios)
    if (name.find(pattern) != std::string::npos) r = ratio;
  return r;
}

// Factorizes `l` through transform `t` (in place) unless its rank would not
// save parameters; h (the calibration Hessian of its input, or null) gives the
// output error.
LayerReport factorize_linear(Linear& l, const InputTransform& t, const FactorizeOptions& opt,
                             const std::vector<float>* h) {
  const double t0 = now_seconds();
  const Tensor w = l.weight().to_dense_f32();
  LayerReport rep;
  rep.name = l.name(), rep.rows = w.dim(0), rep.cols = w.dim(1);
  rep.params_dense = rep.params_kept = rep.rows * rep.cols;
  rep.damp = t.damp_used;
  auto keep_dense = [&] {
    rep.energy_kept = 1, rep.output_rel_err = h ? 0 : -1, rep.seconds = now_seconds() - t0;
    return rep;
  };
  // A ratio of 1 asks to keep every parameter: the Linear stays dense (unless --energy cuts it).
  const double ratio = layer_ratio(opt, rep.name);
  if (ratio >= 1 && opt.energy <= 0) return keep_dense();
  int64_t rank = ratio >= 1 ? std::min(rep.rows, rep.cols) : ratio_rank(rep.rows, rep.cols, ratio);
  const Spectrum s = opt.randomized ? decompose_randomized(w, t, rank, opt.power_iters) : decompose(w, t);
  if (opt.energy > 0) rank = std::min(rank, energy_rank(s, opt.energy));
  if (rank > max_saving_rank(rep.rows, rep.cols)) return keep_dense();  // U and V would hold as much as W
  auto [u, v] = truncate(s, t, rank, opt.factor_dtype);
  auto lw = std::make_shared<LowRankWeight>(std::move(u), std::move(v));
  const Tensor approx = lw->to_dense_f32();
  double kept = 0;
  for (int64_t i = 0; i < rank; ++i) kept += s.sigma[i] * s.sigma[i];
  rep.rank = rank;
  rep.params_kept = rank * (rep.rows + rep.cols);
  rep.energy_kept = s.total_energy > 0 ? kept / s.total_energy : 1;
  rep.weight_rel_err = calib::relative_weight_error(w.f32(), approx.f32(), w.numel());
  if (h) rep.output_rel_err = calib::relative_output_error(w.f32(), approx.f32(), rep.rows, rep.cols, *h);
  l.set_weight(std::move(lw));
  rep.seconds = now_seconds() - t0;
  return rep;
}

// Runs fn(i) for i < n on the OpenMP threads (each SVD is single-threaded
// Eigen code, so the Linears of a group are factorized side by side) and
// rethrows the first error on the calling thread.
template <typename F>
void parallel_each(int64_t n, F&& fn) {
  std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      fn(i);
    } catch (...) {
#pragma omp critical
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

// ASVD / SVD-LLM (and SVD with calibration, for its output error) on the
// calibration driver. The Linears of a group share one input, so one set of
// statistics per group is gathered (from the group's first Linear).
class FactorizeMethod : public calib::BlockMethod {
 public:
  FactorizeMethod(const FactorizeOptions& opt, FactorizeReport& rep) : opt_(opt), rep_(rep) {}

  void begin_group(Transformer&, int, const std::vector<Linear*>& group) override {
    first_ = group.front();
    const int64_t cols = first_->in_features();
    hessian_ = std::make_unique<calib::Hessian>(cols);
    stats_ = calib::ColumnStats(opt_.method == Method::Asvd ? cols : 0);
  }

  void observe(const Linear& l, const float* x, int64_t n) override {
    if (&l != first_) return;
    hessian_->add(x, n);
    if (opt_.method == Method::Asvd) stats_.add(x, n);
  }

  void rewrite(Transformer&, int, const std::vector<Linear*>& group) override {
    const std::vector<float> h = hessian_->matrix();
    const int64_t cols = first_->in_features();
    const InputTransform t = opt_.method == Method::SvdLlm ? whitening_transform(h, cols, opt_.damp)
                             : opt_.method == Method::Asvd ? asvd_transform(stats_.mean_abs(), opt_.asvd_alpha)
                                                           : identity_transform(cols);
    std::vector<LayerReport> reps(group.size());
    parallel_each(int64_t(group.size()), [&](int64_t i) { reps[i] = factorize_linear(*group[i], t, opt_, &h); });
    rep_.layers.insert(rep_.layers.end(), reps.begin(), reps.end());
    hessian_.reset();
  }

 private:
  const FactorizeOptions& opt_;
  FactorizeReport& rep_;
  const Linear* first_ = nullptr;
  std::unique_ptr<calib::Hessian> hessian_;
  calib::ColumnStats stats_;
};

// Plain SVD without data: every block Linear independently.
void factorize_data_free(Transformer& model, const FactorizeOptions& opt, FactorizeReport& rep,
                         const std::function<void(int, int, const std::string&)>& progress) {
  const int n_layers = model.config().n_layers;
  std::vector<Linear*> all;
  std::vector<int> layer_of;
  for (int l = 0; l < n_layers; ++l)
    for (const auto& group : calib::block_groups(model, l))
      for (Linear* lin : group) all.push_back(lin), layer_of.push_back(l);
  std::vector<LayerReport> reps(all.size());
  parallel_each(int64_t(all.size()), [&](int64_t i) {
    if (progress) {
#pragma omp critical
      progress(layer_of[i], n_layers, all[i]->name());
    }
    reps[i] = factorize_linear(*all[i], identity_transform(all[i]->in_features()), opt, nullptr);
  });
  rep.layers = std::move(reps);
}

}  // namespace

FactorizeReport factorize_model(Transformer& model, const calib::CalibSet& calib, const FactorizeOptions& opt,
                                const std::function<void(int, int, const std::string&)>& progress) {
  SHRINK_CHECK(opt.ratio > 0 && opt.ratio <= 1, "--ratio ", opt.ratio, " is outside (0, 1]");
  SHRINK_CHECK(opt.energy >= 0 && opt.energy <= 1, "--energy ", opt.energy, " is outside (0, 1]");
  SHRINK_CHECK(!(opt.randomized && opt.energy > 0), "--energy needs the full spectrum: drop --svd randomized");
  for (const auto& [pattern, r] : opt.layer_ratios)
    SHRINK_CHECK(r > 0 && r <= 1, "layer ratio ", pattern, "=", r, " is outside (0, 1]");
  const double t0 = now_seconds();
  FactorizeReport rep;
  if (calib.seqs.empty()) {
    SHRINK_CHECK(!needs_calibration(opt.method), method_name(opt.method), " needs calibration data (--calib FILE)");
    factorize_data_free(model, opt, rep, progress);
  } else {
    FactorizeMethod method(opt, rep);
    calib::DriverOptions dopt;
    dopt.progress = progress;
    calib::run_blockwise(model, calib, method, dopt);
    rep.calib_tokens = calib.tokens();
  }
  rep.seconds = now_seconds() - t0;
  return rep;
}

int densify_lowrank(Transformer& model) {
  int n = 0;
  for (Linear* l : model.linears())
    if (dynamic_cast<const LowRankWeight*>(&l->weight())) {
      l->set_weight(std::make_shared<DenseWeight>(l->weight().to_dense_f32()));
      ++n;
    }
  return n;
}

}  // namespace shrink::lowrank
