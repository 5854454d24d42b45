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

DistillObjective::DistillObjective(TransformerParams& student, TransformerParams& teacher, DistillSetup setup, int64_t seq_len,
                                   GraphOptions student_options, std::vector<Parameter*> student_params)
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
  SHRINK_CHECK(setup_.attention_weight >= 0 && setup_.minilm_weight >= 0, "--attention-loss and --minilm-loss must be >= 0");
  // Attention maps are compared head by head: the mapped blocks need as many heads.
  auto same_heads = [&](int ls, int lt, const char* what) {
    SHRINK_CHECK(student.cfg.heads(ls) == teacher.cfg.heads(lt), what, ": student block ", ls, " has ",
                 student.cfg.heads(ls), " heads and teacher block ", lt, " has ", teacher.cfg.heads(lt),
                 "; attention maps are compared head by head");
  };
  if (setup_.attention_weight > 0)
    for (const auto& [ls, lt] : setup_.hidden_map) same_heads(ls, lt, "--attention-loss");
  if (setup_.minilm_weight > 0) {
    const int ls = student.cfg.n_layers - 1, lt = teacher.cfg.n_layers - 1;
    same_heads(ls, lt, "--minilm-loss");
    SHRINK_CHECK(student.cfg.kv_heads(ls) == teacher.cfg.kv_heads(lt), "--minilm-loss: the last blocks' KV head counts (",
                 student.cfg.kv_heads(ls), " and ", teacher.cfg.kv_heads(lt), ") differ; value relations are per KV head");
  }
  if (setup_.hidden_weight > 0 && student.cfg.dim != teacher.cfg.dim)
    projection_ = make_hidden_projection("distill.hidden_projection", student.cfg.dim, teacher.cfg.dim);
}

bool DistillObjective::needs_taps() const {
  return setup_.hidden_weight > 0 || setup_.attention_weight > 0 || setup_.minilm_weight > 0;
}

namespace {

// Scores (softmax = false) or attention distributions (true) of block l's q·kᵀ, and
// its value relation softmax(v·vᵀ/√d): [heads·n x seq_len] each.
Var attention_map(const BlockTaps& t, const ModelConfig& c, int l, int64_t seq_len, bool softmax) {
  return relation(t.q, t.k, c.heads(l), c.kv_heads(l), c.head_dim, seq_len, softmax);
}
Var value_relation(const BlockTaps& t, const ModelConfig& c, int l, int64_t seq_len) {
  return relation(t.v, t.v, c.kv_heads(l), c.kv_heads(l), c.head_dim, seq_len, true);
}

}  // namespace

Var DistillObjective::loss(Graph& g, const Batch& b) {
  const bool taps_needed = needs_taps();
  const int last_s = student_.cfg.n_layers - 1, last_t = teacher_.cfg.n_layers - 1;
  const ModelConfig &sc = student_.cfg, &tc = teacher_.cfg;
  // The teacher on its own graph, all weights constants: no gradient, and its
  // activations are freed as soon as the logits (and the tapped states and
  // maps the losses need) are taken.
  Tensor teacher_logits;
  std::vector<Tensor> teacher_hidden, teacher_scores;
  Tensor teacher_attn, teacher_vrel;
  {
    Graph tg;
    std::vector<BlockTaps> taps;
    GraphOptions to;
    to.freeze_base = true;
    if (taps_needed) to.taps = &taps;
    teacher_logits = model_logits(tg, teacher_, b.inputs, seq_len_, to)->value;  // shared storage outlives tg
    for (const auto& [s, t] : setup_.hidden_map) {
      if (setup_.hidden_weight > 0) teacher_hidden.push_back(taps[t].out->value);
      if (setup_.attention_weight > 0) teacher_scores.push_back(attention_map(taps[t], tc, t, seq_len_, false)->value);
    }
    if (setup_.minilm_weight > 0) {
      teacher_attn = attention_map(taps[last_t], tc, last_t, seq_len_, true)->value;
      teacher_vrel = value_relation(taps[last_t], tc, last_t, seq_len_)->value;
    }
  }
  std::vector<BlockTaps> taps;
  GraphOptions so = student_options_;
  if (taps_needed) so.taps = &taps;
  Var logits = model_logits(g, student_, b.inputs, seq_len_, so);
  Var loss = distillation_loss(logits, g.constant(teacher_logits), b.targets, setup_.kd);
  // Each feature term is the mean over its pairs, times its weight.
  const float pairs = float(setup_.hidden_map.size());
  if (setup_.hidden_weight > 0) {
    Var proj = has_projection() ? g.param(projection_) : nullptr;
    for (size_t i = 0; i < setup_.hidden_map.size(); ++i)
      loss = add(loss, scale(hidden_state_mse(taps[setup_.hidden_map[i].first].out, g.constant(teacher_hidden[i]), proj),
                             setup_.hidden_weight / pairs));
  }
  if (setup_.attention_weight > 0)
    for (size_t i = 0; i < setup_.hidden_map.size(); ++i) {
      const int l = setup_.hidden_map[i].first;
      Var scores = attention_map(taps[l], sc, l, seq_len_, false);
      loss = add(loss, scale(mse(scores, g.constant(teacher_scores[i])), setup_.attention_weight / pairs));
    }
  if (setup_.minilm_weight > 0) {
    Var attn = relation_kl(attention_map(taps[last_s], sc, last_s, seq_len_, true), g.constant(teacher_attn));
    Var vrel = relation_kl(value_relation(taps[last_s], sc, last_s, seq_len_), g.constant(teacher_vrel));
    loss = add(loss, scale(add(attn, vrel), setup_.minilm_weight));
  }
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
                  {"hidden_weight", setup_.hidden_weight},
                  {"hidden_map", setup_.hidden_weight > 0 || setup_.attention_weight > 0 ? map : nullptr},
                  {"attention_weight", setup_.attention_weight}, {"minilm_weight", setup_.minilm_weight},
                  {"teacher", config_to_json(teacher_.cfg)}};
  return o;
}

}  // namespace shrink::train
