// The objective of `shrink distill` (and of `shrink finetune --teacher`): a
// frozen teacher run forward on each batch (no gradient, logits and hidden
// states computed on the fly, never stored), and a student trained with
// distillation_loss (α·KD + (1−α)·CE) plus, optionally, TinyBERT's
// hidden-state MSE through a learned projection when the widths differ,
// TinyBERT's attention-score MSE over the same layer pairs, and MiniLM's
// last-layer attention-distribution and value-relation KL.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "train/losses.h"
#include "train/trainer.h"

namespace shrink::train {

struct DistillSetup {
  DistillLossConfig kd;
  float hidden_weight = 0;                     // 0 = no hidden-state loss
  std::vector<std::pair<int, int>> hidden_map;  // (student layer, teacher layer), 0-based
  // TinyBERT (Jiao et al. 2020, eq. 7): MSE of the unnormalised attention
  // scores q·kᵀ/√d, per head, over hidden_map's pairs (needs equal head counts).
  float attention_weight = 0;
  // MiniLM (Wang et al. 2020, eqs. 7-8): KL(teacher ‖ student) of the last
  // blocks' attention distributions plus that of their value relations
  // softmax(v·vᵀ/√d) (needs equal head counts; widths may differ).
  float minilm_weight = 0;
};

// "1:3,3:7" (student:teacher, 0-based block indices) → pairs, checked against
// the layer counts. Empty → the last student block against the last teacher block.
std::vector<std::pair<int, int>> parse_hidden_map(const std::string& text, int student_layers, int teacher_layers);

class DistillObjective {
 public:
  // The student's graph is built with `student_options` (LoRA, frozen base);
  // `student_params` are what is trained (empty = student.all()). Both models must outlive this.
  DistillObjective(TransformerParams& student, TransformerParams& teacher, DistillSetup setup, int64_t seq_len,
                   GraphOptions student_options = {}, std::vector<Parameter*> student_params = {});

  // The Trainer's objective: the loss above over the student's parameters and the projection.
  TrainObjective objective();
  bool has_projection() const { return !projection_.value.empty(); }

 private:
  Var loss(Graph& g, const Batch& b);
  bool needs_taps() const;

  TransformerParams& student_;
  TransformerParams& teacher_;
  DistillSetup setup_;
  int64_t seq_len_;
  GraphOptions student_options_;
  std::vector<Parameter*> student_params_;
  Parameter projection_;  // W_h {d_teacher, d_student}; empty when the widths are equal or there is no hidden loss
};

}  // namespace shrink::train
