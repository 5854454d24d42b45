// Initialising a smaller student from its teacher's weights, so distillation
// starts from a model that already works instead of from noise.
#pragma once
#include <vector>

#include "train/llama_graph.h"

namespace shrink::train {

// A student with the teacher's blocks at `layers` (strictly increasing, in
// range), renamed blk.0, blk.1, ...; the embedding, final norm and head are
// copied too. Deep copies: training the student leaves the teacher alone.
TransformerParams student_from_layers(const TransformerParams& teacher, const std::vector<int>& layers);

// DistilBERT's initialisation (Sanh et al. 2019, §3: "taking one layer out of
// two"): the teacher's layers 0, k, 2k, ... — ceil(n_layers / k) of them.
TransformerParams student_every_kth_layer(const TransformerParams& teacher, int k);

// A deep copy of a model's parameters (a frozen teacher beside its trained student, a
// snapshot before a merge).
TransformerParams clone_params(const TransformerParams& p);

}  // namespace shrink::train
