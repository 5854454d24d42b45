// Folding a per-input-channel scale through a Linear group's producer:
//   W_l[:, j] *= s[j] for every Linear l of the group, producer / s[j],
// which leaves the float model's function unchanged. AWQ (Lin et al. 2023)
// and SmoothQuant (Xiao et al. 2022) both rewrite weights this way; they only
// choose s differently. The producer is the RMSNorm/LayerNorm before q/k/v and
// gate/up, or the rows of v (for o) and up (for down, since silu(gate) * up is
// linear in up). Groups with no linear producer (GPT-2's down after GELU, o
// when v is shared by GQA) cannot be scaled.
#pragma once
#include <functional>
#include <vector>

#include "model/transformer.h"

namespace shrink::calib {

// Which producer the group's input comes from, if any.
enum class Producer { None, Norm, Linear };
Producer producer_of(Transformer& model, int layer, const std::vector<Linear*>& group);

// The f32 weight of a Linear to scale in place. AWQ keeps its own f32 copies
// (the Linears point at them); dense_f32_of() replaces the Linear's weight by
// an owned f32 copy and returns it.
using F32Of = std::function<Tensor&(Linear&)>;
F32Of dense_f32_of();

// Multiplies the group's columns by s and divides the producer's output
// channels by s (norm weight and bias, or producer rows and bias). Throws if
// the group has no producer.
void fold_input_scale(Transformer& model, int layer, const std::vector<Linear*>& group, const std::vector<float>& s,
                      const F32Of& f32_of);

}  // namespace shrink::calib
