// Training losses over logits [n_tokens x vocab] (train/ops.h values). Each
// returns a one-element Var; gradients flow into the student's logits only.
#pragma once
#include <cstdint>
#include <vector>

#include "train/autograd.h"

namespace shrink::train {

// Targets equal to this are left out of the loss and of its mean (padding).
constexpr int32_t kIgnoreTarget = -1;

// Softmax cross-entropy, mean over the tokens whose target is not kIgnoreTarget.
Var cross_entropy(Var logits, const std::vector<int32_t>& targets);

// Distillation loss (Hinton, Vinyals & Dean 2015): forward KL(p_teacher ‖ p_student)
// of the temperature-T softmaxes, mean over tokens, times T² so that its
// gradient's size does not depend on T. The teacher is a constant (it must not
// require a gradient).
Var kl_divergence(Var student_logits, Var teacher_logits, float temperature);

}  // namespace shrink::train
