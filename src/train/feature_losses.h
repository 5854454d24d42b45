// Feature-based distillation losses: they compare intermediate
// representations of a student and a teacher (block outputs from
// llama_logits' taps), not their output distributions.
#pragma once
#include <cstdint>
#include <string>

#include "train/autograd.h"

namespace shrink::train {

// Mean squared error mean((a − b)²) over all entries, one element. Either side
// may need a gradient (b is usually a teacher's constant).
Var mse(Var a, Var b);

// TinyBERT's hidden-state loss (Jiao et al. 2020, eq. 8): MSE(H_s · W_h, H_t),
// H_s [n x d_s] a student block's output, H_t [n x d_t] the teacher's, W_h a
// learned projection {d_t, d_s} (a Linear's weight layout) when the widths
// differ; null when they are equal (then it is plain MSE(H_s, H_t)).
Var hidden_state_mse(Var student_hidden, Var teacher_hidden, Var projection = nullptr);

// A projection for hidden_state_mse from width d_s to d_t: the first min(d_s,
// d_t) coordinates copied (identity on the shared part, zeros elsewhere), so
// training starts from "compare what overlaps" rather than from noise.
Parameter make_hidden_projection(const std::string& name, int64_t student_dim, int64_t teacher_dim);

// KL(teacher ‖ student) between rows that are probability distributions
// (relation(..., softmax = true): attention maps, value relations), summed
// over each row's entries and averaged over the rows that carry mass. MiniLM
// (Wang et al. 2020, eqs. 7-8) distils the last layer's attention
// distributions relation(q, k) and its value relation relation(v, v) this way.
// The student's zeros (masked entries) must be the teacher's zeros.
Var relation_kl(Var student_rows, Var teacher_rows);

}  // namespace shrink::train
