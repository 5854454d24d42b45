#include "train/fake_quant.h"

#include <algorithm>
#include <cmath>

#include "compress/quant/target.h"
#include "core/error.h"
#include "kernels/quant_blocks.h"
#include "model/group_weight.h"

namespace shrink::train {

namespace {

// A learned step that an optimizer pushed to zero would divide by zero; the
// forward and the export both read it through this floor on its magnitude
// (f16 scales: f16's smallest normal, so the rounded step is never 0).
constexpr float kMinStep = 1e-10f, kMinStepF16 = 6.103515625e-05f;

struct Grid {
  quant::Codebook cb;
  int64_t rows, cols, glen, ng;
  float zero, qn, qp;  // z = 2^(b−1); the clip range of w/s is [−Qn, Qp]
  bool f16;

  Grid(const quant::QuantSpec& spec, const Tensor& w, bool f16_scales = false)
      : cb(spec), rows(w.dim(0)), cols(w.dim(1)), glen(spec.group_len(cols)), ng((cols + glen - 1) / glen),
        f16(f16_scales) {
    zero = float(1 << (spec.bits - 1));
    qn = zero;
    qp = float((1 << spec.bits) - 1) - zero;
  }
  int64_t group_size(int64_t k) const { return std::min(glen, cols - k * glen); }
  quant::GroupParams params(float step) const { return {effective_step(step, f16), zero}; }
};

void check_weight(const Tensor& w, const quant::QuantSpec& spec) {
  SHRINK_CHECK(w.ndim() == 2, "fake quantization needs a matrix, got ", shape_str(w.shape));
  SHRINK_CHECK(spec.code == quant::Code::Int && spec.symmetric && spec.group >= 0,
               "fake quantization covers symmetric integer group formats (intBgGsym), not ", spec.name());
}

// ŵ = s·(encode(w) − z) with quant::Codebook's own rounding (the exporter's).
void fake_quant_values(const Grid& grid, const float* w, const float* steps, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < grid.rows; ++r)
    for (int64_t c = 0; c < grid.cols; ++c) {
      const quant::GroupParams p = grid.params(steps[r * grid.ng + c / grid.glen]);
      out[r * grid.cols + c] = grid.cb.decode(grid.cb.encode(w[r * grid.cols + c], p), p);
    }
}

}  // namespace

float effective_step(float s, bool f16_scales) {
  const float floor = f16_scales ? kMinStepF16 : kMinStep;
  const float m = std::max(std::fabs(s), floor), signed_step = s < 0 ? -m : m;
  return f16_scales ? f16_to_f32(f32_to_f16(signed_step)) : signed_step;
}

quant::QuantSpec fake_quant_spec(int bits, int64_t group) {
  SHRINK_CHECK(bits >= 2 && bits <= 8, "fake quantization takes 2..8 bits, got ", bits);
  SHRINK_CHECK(group == 0 || group >= 8, "fake quantization group ", group, " is too small (>= 8, or 0 per row)");
  quant::QuantSpec s;
  s.bits = bits;
  s.group = group;
  s.symmetric = true;
  s.code = quant::Code::Int;
  return s;
}

Tensor rtn_steps(const Tensor& w, const quant::QuantSpec& spec) {
  check_weight(w, spec);
  const Grid grid(spec, w);
  Tensor steps = Tensor::alloc(DType::F32, {grid.rows, grid.ng});
  for (int64_t r = 0; r < grid.rows; ++r)
    for (int64_t k = 0; k < grid.ng; ++k)
      steps.f32()[r * grid.ng + k] =
          quant::choose_group_params(grid.cb, spec, w.f32() + r * grid.cols + k * grid.glen, grid.group_size(k),
                                     nullptr)
              .scale;
  return steps;
}

Var fake_quant_rtn(Var w, const quant::QuantSpec& spec) {
  const Tensor steps = rtn_steps(w->value, spec);
  const Grid grid(spec, w->value);
  Var y = w->graph->make(Tensor::alloc(DType::F32, w->value.shape), {w});
  fake_quant_values(grid, w->v(), steps.f32(), y->v());
  if (y->requires_grad)
    y->backward = [=] {
      // The grid follows the weights (nothing lies beyond half a step of its
      // range), so the straight-through gradient is the identity.
      const int64_t n = w->value.numel();
      for (int64_t i = 0; i < n; ++i) w->g()[i] += y->g()[i];
    };
  return y;
}

Var fake_quant_lsq(Var w, Var step, const quant::QuantSpec& spec, bool f16_scales) {
  check_weight(w->value, spec);
  const Grid grid(spec, w->value, f16_scales);
  SHRINK_CHECK(step->value.ndim() == 2 && step->value.dim(0) == grid.rows && step->value.dim(1) == grid.ng,
               "fake_quant_lsq: steps ", shape_str(step->value.shape), " for ", grid.rows, " rows of ", grid.ng,
               " groups");
  Var y = w->graph->make(Tensor::alloc(DType::F32, w->value.shape), {w, step});
  fake_quant_values(grid, w->v(), step->v(), y->v());
  if (!y->requires_grad) return y;
  y->backward = [=] {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < grid.rows; ++r)
      for (int64_t k = 0; k < grid.ng; ++k) {
        const quant::GroupParams p = grid.params(step->v()[r * grid.ng + k]);
        const int64_t c0 = k * grid.glen, n = grid.group_size(k);
        double ds = 0;
        for (int64_t c = c0; c < c0 + n; ++c) {
          const int64_t i = r * grid.cols + c;
          const float t = w->v()[i] / p.scale, dy = y->g()[i];
          if (t <= -grid.qn) {
            ds -= double(dy) * grid.qn;
          } else if (t >= grid.qp) {
            ds += double(dy) * grid.qp;
          } else {
            if (w->requires_grad) w->g()[i] += dy;                   // STE inside the range
            ds += double(dy) * ((float(grid.cb.encode(w->v()[i], p)) - p.zero) - t);  // round(w/s) − w/s
          }
        }
        if (step->requires_grad)
          // LSQ's gradient scale; the f16 rounding of the step is passed straight through.
          step->g()[r * grid.ng + k] += float(ds / std::sqrt(double(n) * grid.qp));
      }
  };
  return y;
}

// ---------------------------------------------------------------- FakeQuant

FakeQuant::FakeQuant(TransformerParams& model, const FakeQuantConfig& cfg)
    : cfg_(cfg), spec_(fake_quant_spec(cfg.bits, cfg.group)) {
  for (Parameter* w : model.linears()) {
    const bool chosen = cfg.names.empty()
                            ? std::find(cfg.targets.begin(), cfg.targets.end(), linear_role(w->name)) != cfg.targets.end()
                            : std::find(cfg.names.begin(), cfg.names.end(), w->name) != cfg.names.end();
    if (!chosen) continue;
    covered_.insert(w->name);
    order_.push_back(w->name);
    if (cfg.lsq) steps_.emplace(w->name, Parameter(w->name + ".lsq_step", rtn_steps(w->value, spec_), false));
  }
  SHRINK_CHECK(!covered_.empty(), "fake quantization: no Linear of the model has a targeted role");
}

Var FakeQuant::apply(Graph& g, const std::string& name, Var w) {
  SHRINK_CHECK(covers(name), "fake quantization does not cover ", name);
  if (!cfg_.lsq) return fake_quant_rtn(w, spec_);
  return fake_quant_lsq(w, g.param(steps_.at(name)), spec_, cfg_.f16_scales);
}

std::vector<Parameter*> FakeQuant::params() {
  std::vector<Parameter*> out;
  if (cfg_.lsq)
    for (const std::string& name : order_) out.push_back(&steps_.at(name));
  return out;
}

Tensor FakeQuant::steps_of(const Parameter& w) const {
  SHRINK_CHECK(covers(w.name), "fake quantization does not cover ", w.name);
  return cfg_.lsq ? steps_.at(w.name).value : rtn_steps(w.value, spec_);
}

std::shared_ptr<GroupQuantWeight> FakeQuant::export_weight(const Parameter& w) const {
  const Tensor steps = steps_of(w);
  const Grid grid(spec_, w.value, cfg_.lsq && cfg_.f16_scales);
  std::vector<uint8_t> codes(size_t(grid.rows * grid.cols));
  std::vector<float> scale(size_t(grid.rows * grid.ng)), zero(scale.size(), grid.zero);
  for (int64_t r = 0; r < grid.rows; ++r)
    for (int64_t k = 0; k < grid.ng; ++k) {
      const quant::GroupParams p = grid.params(steps.f32()[r * grid.ng + k]);
      scale[r * grid.ng + k] = p.scale;
      for (int64_t c = k * grid.glen; c < k * grid.glen + grid.group_size(k); ++c)
        codes[r * grid.cols + c] = grid.cb.encode(w.value.f32()[r * grid.cols + c], p);
    }
  return std::make_shared<GroupQuantWeight>(spec_, grid.rows, grid.cols, codes, std::move(scale), std::move(zero));
}

Tensor FakeQuant::export_q4_0(const Parameter& w) const {
  SHRINK_CHECK(spec_.bits == 4 && spec_.group == 32 && cfg_.lsq && cfg_.f16_scales,
               "Q4_0 export needs LSQ fake quantization of int4g32sym with f16 scales, not ", spec_.name());
  SHRINK_CHECK(w.value.ndim() == 2 && w.value.dim(1) % kernels::kQK == 0, w.name, ": rows of ", w.value.dim(1),
               " values do not split into Q4_0 blocks");
  const Tensor steps = steps_of(w);
  const Grid grid(spec_, w.value, true);
  Tensor out = Tensor::alloc(DType::Q4_0, {grid.rows, grid.cols});
  auto* blocks = static_cast<kernels::BlockQ4_0*>(out.data);
  for (int64_t r = 0; r < grid.rows; ++r)
    for (int64_t k = 0; k < grid.ng; ++k) {
      const quant::GroupParams p = grid.params(steps.f32()[r * grid.ng + k]);
      kernels::BlockQ4_0& b = blocks[r * grid.ng + k];
      b.d = f32_to_f16(p.scale);  // already an f16 value: exact
      const float* x = w.value.f32() + r * grid.cols + k * kernels::kQK;
      for (int j = 0; j < kernels::kQK / 2; ++j)  // q[j] in the low nibble of qs[j], q[j + 16] in its high nibble
        b.qs[j] = uint8_t(grid.cb.encode(x[j], p) | (grid.cb.encode(x[j + kernels::kQK / 2], p) << 4));
    }
  return out;
}

void FakeQuant::quantize_in_place(TransformerParams& model) const {
  for (Parameter* w : model.linears()) {
    if (!covers(w->name)) continue;
    const Tensor steps = steps_of(*w);
    const Grid grid(spec_, w->value, cfg_.lsq && cfg_.f16_scales);
    Tensor q = Tensor::alloc(DType::F32, w->value.shape);
    fake_quant_values(grid, w->value.f32(), steps.f32(), q.f32());
    std::copy(q.f32(), q.f32() + q.numel(), w->value.f32());
  }
}

}  // namespace shrink::train
