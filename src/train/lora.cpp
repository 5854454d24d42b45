#include "train/lora.h"

#include <dnnl.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include "core/error.h"
#include "train/ops.h"

namespace shrink::train {

namespace {

// PyTorch's nn.Linear / PEFT default for A: kaiming_uniform_(a = sqrt(5)), i.e. U(±1/sqrt(in)).
Tensor kaiming_uniform(int64_t rows, int64_t in, std::mt19937_64& rng) {
  Tensor t = Tensor::alloc(DType::F32, {rows, in});
  const float bound = 1.0f / std::sqrt(float(in));
  std::uniform_real_distribution<float> dist(-bound, bound);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = dist(rng);
  return t;
}

}  // namespace

namespace {

// A role of `arch`'s Linears (the block roles and the head), or a clear error.
void check_role(const std::string& role, Arch arch) {
  const std::vector<std::string> roles = block_linear_roles(arch);
  if (role == "head" || std::find(roles.begin(), roles.end(), role) != roles.end()) return;
  std::string list;
  for (const auto& r : roles) list += r + ", ";
  fail("unknown LoRA target '", role, "' for a ", arch_name(arch), " model (use ", list, "head, or all)",
       arch == Arch::GPT2 && (role == "q" || role == "k" || role == "v") ? "; GPT-2's q, k, v are one fused Linear, qkv"
                                                                        : "");
}

}  // namespace

std::vector<std::string> parse_lora_targets(const std::string& list, Arch arch) {
  if (list == "all") return block_linear_roles(arch);
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string role; std::getline(ss, role, ',');) {
    check_role(role, arch);
    out.push_back(role);
  }
  SHRINK_CHECK(!out.empty(), "no LoRA targets in '", list, "'");
  return out;
}

LoraAdapters::LoraAdapters(TransformerParams& model, const LoraConfig& cfg) : cfg_(cfg) {
  SHRINK_CHECK(cfg.rank > 0, "LoRA rank ", cfg.rank, " must be positive");
  SHRINK_CHECK(cfg.alpha > 0, "LoRA alpha ", cfg.alpha, " must be positive");
  for (const std::string& role : cfg.targets) check_role(role, model.cfg.arch);
  std::mt19937_64 rng(cfg.seed);
  for (Parameter* w : model.linears()) {
    const std::string role = linear_role(w->name);
    if (std::find(cfg.targets.begin(), cfg.targets.end(), role) == cfg.targets.end()) continue;
    const int64_t out = w->value.dim(0), in = w->value.dim(1);
    SHRINK_CHECK(cfg.rank <= std::min(out, in), "LoRA rank ", cfg.rank, " exceeds ", w->name, " ",
                 shape_str(w->value.shape));
    Adapter ad{Parameter(w->name + ".lora_a", kaiming_uniform(cfg.rank, in, rng)),
               Parameter(w->name + ".lora_b", Tensor::zeros(DType::F32, {out, int64_t(cfg.rank)}))};
    adapters_.emplace(w->name, std::move(ad));
    order_.push_back(w->name);
  }
  SHRINK_CHECK(!adapters_.empty(), "LoRA: no Linear of the model has a targeted role");
}

const LoraAdapters::Adapter* LoraAdapters::find(const std::string& name) const {
  const auto it = adapters_.find(name);
  return it == adapters_.end() ? nullptr : &it->second;
}

Var LoraAdapters::delta(Graph& g, const std::string& name, Var x) {
  const auto it = adapters_.find(name);
  if (it == adapters_.end()) return nullptr;
  // Two thin products, r columns in between: O(n·r·(in + out)) rather than a dense update of W.
  return scale(linear(linear(x, g.param(it->second.a)), g.param(it->second.b)), scaling());
}

std::vector<Parameter*> LoraAdapters::params() {
  std::vector<Parameter*> out;
  for (const std::string& name : order_) {
    Adapter& ad = adapters_.at(name);
    out.push_back(&ad.a);
    out.push_back(&ad.b);
  }
  return out;
}

int64_t LoraAdapters::count() {
  int64_t n = 0;
  for (Parameter* p : params()) n += p->numel();
  return n;
}

void LoraAdapters::merge_into(TransformerParams& model) const {
  size_t merged = 0;
  for (Parameter* w : model.linears()) {
    const Adapter* ad = find(w->name);
    if (!ad) continue;
    const int64_t out = w->value.dim(0), in = w->value.dim(1), r = cfg_.rank;
    SHRINK_CHECK(ad->b.value.dim(0) == out && ad->a.value.dim(1) == in, "LoRA merge: ", w->name, " ",
                 shape_str(w->value.shape), " does not match its adapter");
    // W[out x in] += (α/r) · B[out x r] · A[r x in]
    const dnnl_status_t st = dnnl_sgemm('N', 'N', out, in, r, scaling(), ad->b.value.f32(), r, ad->a.value.f32(), in,
                                        1.0f, w->value.f32(), in);
    SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
    ++merged;
  }
  SHRINK_CHECK(merged == adapters_.size(), "LoRA merge: the model has ", merged, " of the ", adapters_.size(),
               " adapted Linears");
}

}  // namespace shrink::train
