#include "train/autograd.h"

#include <cstring>

#include "core/error.h"

namespace shrink::train {

Parameter::Parameter(std::string n, Tensor v, bool d) : name(std::move(n)), value(std::move(v)), decay(d) {
  SHRINK_CHECK(value.dtype == DType::F32, "parameter ", name, " must be f32 (master weights are f32)");
  grad = Tensor::zeros(DType::F32, value.shape);
}

void Parameter::zero_grad() {
  if (grad.empty()) grad = Tensor::zeros(DType::F32, value.shape);
  std::memset(grad.data, 0, grad.nbytes());
}

Var Graph::param(Parameter& p) {
  SHRINK_CHECK(!p.value.empty() && p.value.dtype == DType::F32, "parameter ", p.name, " is empty or not f32");
  if (p.grad.empty()) p.grad = Tensor::zeros(DType::F32, p.value.shape);
  Var n = make(p.value, {});
  n->grad = p.grad;
  n->requires_grad = true;
  return n;
}

Var Graph::constant(Tensor t) {
  SHRINK_CHECK(t.dtype == DType::F32, "graph constants are f32");
  return make(std::move(t), {});
}

Var Graph::make(Tensor value, std::initializer_list<Var> inputs) {
  auto node = std::make_unique<Node>();
  node->graph = this;
  node->value = std::move(value);
  for (Var in : inputs) {
    if (!in) continue;
    SHRINK_CHECK(in->graph == this, "an op mixes nodes of two graphs");
    node->requires_grad = node->requires_grad || in->requires_grad;
  }
  nodes_.push_back(std::move(node));
  return nodes_.back().get();
}

void Graph::backward(Var loss) {
  SHRINK_CHECK(loss && loss->graph == this && loss->value.numel() == 1, "backward() needs a one-element loss");
  SHRINK_CHECK(loss->requires_grad, "the loss depends on no parameter");
  SHRINK_CHECK(!backward_done_, "backward() already ran on this graph (build a new graph per step)");
  backward_done_ = true;
  // Zero gradients for every intermediate that needs one (parameter leaves
  // already share their Parameter's, which keeps accumulating).
  // The fills are split over threads: at batch 32×256 these are hundreds of MB.
  for (auto& n : nodes_)
    if (n->requires_grad && n->grad.empty()) {
      n->grad = Tensor::alloc(DType::F32, n->value.shape);
      float* g = n->g();
      const int64_t m = n->grad.numel();
#pragma omp parallel for schedule(static) if (m > (1 << 16))
      for (int64_t i = 0; i < m; ++i) g[i] = 0.0f;
    }
  loss->g()[0] += 1.0f;
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it)
    if ((*it)->requires_grad && (*it)->backward) (*it)->backward();
}

}  // namespace shrink::train
