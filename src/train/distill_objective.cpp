#include "train/distill_objective.h"

#include <sstream>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/feature_losses.h"
#include "train/ops.h"

namespace shrink::train {

std::vector<std::pair<int, int>> parse_hidden_map(const std::string& text, int student_layers, int teacher_layers) {
  if (text.empty()) return {{student_layers - 1, teacher_layers - 1}};
  std::vector<std::pair<int, int>> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    int s = -1, t = -1;
    char colon = 0, extra = 0;
    std::stringstream one(item);
    SHRINK_CHECK((one >> s >> colon >> t) && colon == ':' && !(one >> extra), "--hidden-map: '", item,
                 "' is not STUDENT:TEACHER (block indices, e.g. 1:3)");
    SHRINK_CHECK(s >= 0 && s < student_layers, "--hidden-map: student layer ", s, " is not one of the student's ",
                 student_layers);
    SHRINK_CHECK(t >= 0 && t < teacher_layers, "--hidden-map: teacher layer ", t, " is not one of the teacher's ",
                 teacher_layers);
    out.emplace_back(s, t);
  }
  SHRINK_CHECK(!out.empty(), "--hidden-map is empty");
  return out;
}

DistillObjective::DistillObjective(LlamaParams& student, LlamaParams& teacher, DistillSetup setup, int64_t seq_len,
                                   LlamaGraphOptions student_options, std::vector<Parameter*> student_params)
    : student_(student),
      teacher_(teacher),
      setup_(std::move(setup)),
      seq_len_(seq_len),
      student_options_(student_options),
      student_params_(student_params.empty() ? student.all() : std::move(student_params)) {
  SHRINK_CHECK(student.cfg.vocab_size == teacher.cfg.vocab_size, "the student's vocabulary (",
               student.cfg.vocab_size, ") differs from the teacher's (", teacher.cfg.vocab_size,
               "): distillation compares their output distributions token by token");
  SHRINK_CHECK(setup_.kd.temperature > 0, "--temperature must be positive");
  SHRINK_CHECK(setup_.kd.alpha >= 0 && setup_.kd.alpha <= 1, "--alpha must be in [0, 1]");
  SHRINK_CHECK(setup_.hidden_weight >= 0, "--hidden-loss must be >= 0");
  if (setup_.hidden_weight > 0 && student.cfg.dim != teacher.cfg.dim)
    projection_ = make_hidden_projection("distill.hidden_projection", student.cfg.dim, teacher.cfg.dim);
}

Var DistillObjective::loss(Graph& g, const Batch& b) {
  const bool hidden = setup_.hidden_weight > 0;
  // The teacher on its own graph, all weights constants: no gradient, and its
  // activations are freed as soon as the logits (and tapped states) are taken.
  Tensor teacher_logits;
  std::vector<Tensor> teacher_hidden;
  {
    Graph tg;
    std::vector<BlockTaps> taps;
    LlamaGraphOptions to;
    to.freeze_base = true;
    if (hidden) to.taps = &taps;
    teacher_logits = llama_logits(tg, teacher_, b.inputs, seq_len_, to)->value;  // shared storage outlives tg
    for (const auto& [s, t] : setup_.hidden_map)
      if (hidden) teacher_hidden.push_back(taps[t].out->value);
  }
  std::vector<BlockTaps> taps;
  LlamaGraphOptions so = student_options_;
  if (hidden) so.taps = &taps;
  Var logits = llama_logits(g, student_, b.inputs, seq_len_, so);
  Var loss = distillation_loss(logits, g.constant(teacher_logits), b.targets, setup_.kd);
  if (!hidden) return loss;
  Var proj = has_projection() ? g.param(projection_) : nullptr;
  // The hidden term is the mean over the mapped pairs, times --hidden-loss.
  const float w = setup_.hidden_weight / float(setup_.hidden_map.size());
  for (size_t i = 0; i < setup_.hidden_map.size(); ++i)
    loss = add(loss, scale(hidden_state_mse(taps[setup_.hidden_map[i].first].out, g.constant(teacher_hidden[i]), proj),
                           w));
  return loss;
}

TrainObjective DistillObjective::objective() {
  TrainObjective o;
  o.loss = [this](Graph& g, const Batch& b) { return loss(g, b); };
  o.graph_options = student_options_;
  o.params = student_params_;
  if (has_projection()) o.params.push_back(&projection_);
  const char* kinds[] = {"fkl", "rkl", "jsd"};
  nlohmann::json map = nlohmann::json::array();
  for (const auto& [s, t] : setup_.hidden_map) map.push_back({s, t});
  o.trajectory = {{"kd", kinds[int(setup_.kd.kind)]}, {"alpha", setup_.kd.alpha},
                  {"temperature", setup_.kd.temperature}, {"jsd_beta", setup_.kd.jsd_beta},
                  {"hidden_weight", setup_.hidden_weight}, {"hidden_map", setup_.hidden_weight > 0 ? map : nullptr},
                  {"teacher", config_to_json(teacher_.cfg)}};
  return o;
}

}  // namespace shrink::train
