// Reverse-mode autograd over shrink's Tensor (DESIGN.md §2: training is the
// same model with gradients). A Graph is a tape: every op appends a Node
// (its f32 value, and a closure that adds the node's gradient into its
// inputs' gradients); backward() walks the tape in reverse from a scalar loss.
// A graph is built per step and thrown away; what persists across steps is a
// Parameter (master f32 weight + gradient), whose gradient *accumulates* over
// backward() calls until zero_grad(): gradient accumulation over micro-batches
// needs nothing more.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace shrink::train {

// A trainable f32 tensor: the optimizer's master weight and its gradient.
struct Parameter {
  std::string name;
  Tensor value;        // f32
  Tensor grad;         // f32, same shape; summed over backward() calls until zero_grad()
  bool decay = true;   // weight decay applies (false for norms and biases, by convention)

  Parameter() = default;
  Parameter(std::string name, Tensor value, bool decay = true);
  void zero_grad();
  int64_t numel() const { return value.numel(); }
};

class Graph;

struct Node {
  Graph* graph = nullptr;
  Tensor value;                    // f32
  Tensor grad;                     // f32, same shape (allocated by backward, or the parameter's)
  bool requires_grad = false;
  std::function<void()> backward;  // adds grad into the inputs' grads (set only when requires_grad)

  float* v() const { return value.ptr<float>(); }
  float* g() const { return grad.ptr<float>(); }
  int64_t rows() const { return value.rows(); }
  int64_t cols() const { return value.cols(); }
};
using Var = Node*;  // owned by its Graph; valid while the graph lives

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // A leaf over a parameter: shares its value and its gradient (so backward
  // accumulates straight into Parameter::grad). Using the same parameter twice
  // (tied embeddings) gives two leaves over one gradient: both uses add up.
  Var param(Parameter& p);
  // A leaf that needs no gradient (inputs, targets, a teacher's logits).
  Var constant(Tensor t);
  // A node of a new op: requires a gradient when any input does (null inputs are skipped).
  Var make(Tensor value, std::initializer_list<Var> inputs);

  // Runs the tape backwards from `loss` (one element), seeding d loss = 1.
  // Once per graph: a second pass would add every intermediate gradient twice.
  void backward(Var loss);
  size_t size() const { return nodes_.size(); }

 private:
  std::vector<std::unique_ptr<Node>> nodes_;
  bool backward_done_ = false;
};

}  // namespace shrink::train
