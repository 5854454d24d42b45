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

// Reverse KL(p_student ‖ p_teacher) at temperature T, mean over tokens, × T²:
// mode-seeking (the student is not pushed to cover the teacher's tail). MiniLLM
// (Gu et al. 2023) minimises the *sequence-level* reverse KL with a policy
// gradient over sequences the student samples; this is the token-level form on
// teacher-forced data, the usual simplification (docs/distillation.md).
Var reverse_kl_divergence(Var student_logits, Var teacher_logits, float temperature);

// Generalized Jensen-Shannon divergence of GKD (Agarwal et al. 2024, eq. 1) with
// P = teacher, Q = student, M = β·P + (1−β)·Q:
//   JSD(β) = β·KL(P ‖ M) + (1−β)·KL(Q ‖ M),  0 < β < 1,
// at temperature T, mean over tokens, × T². β = 0.5 is the symmetric JSD; as β
// nears 0 or 1 it behaves (scaled by β or 1−β) like forward or reverse KL.
Var generalized_jsd(Var student_logits, Var teacher_logits, float beta, float temperature);

enum class KdLoss { ForwardKl, ReverseKl, Jsd };

struct DistillLossConfig {
  KdLoss kind = KdLoss::ForwardKl;
  float temperature = 2.0f;
  float alpha = 0.5f;  // weight of the soft-target term; 1 − alpha on the hard-label cross-entropy
  float jsd_beta = 0.5f;
};

// Hinton et al.'s mixture: alpha · KD(student, teacher; T) + (1 − alpha) · CE(student, targets),
// the KD term the one `kind` names (with its T² factor), CE at temperature 1.
Var distillation_loss(Var student_logits, Var teacher_logits, const std::vector<int32_t>& targets,
                      const DistillLossConfig& cfg);

}  // namespace shrink::train
