// shrink distill --teacher T.gguf (--student S | --student-layers every:K|LIST | --student-config C.json)
//                --data FILE --loss fkl|rkl|jsd [--alpha A] [--temperature T] [--hidden-loss W] [--attention-loss W] [--minilm-loss W] -o OUT.gguf
// Knowledge distillation (docs/distillation.md): the teacher is frozen and run
// forward on every batch; the student is trained by train::Trainer with
// train::DistillObjective, and written as GGUF with the teacher's tokenizer.
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/train_common.h"
#include "core/error.h"
#include "model/random_init.h"
#include "train/distill_objective.h"
#include "train/student_init.h"

namespace shrink::cli {

namespace {

struct DistillArgs {
  std::string teacher, student, student_layers, student_config, tokenizer, loss = "fkl", hidden_map;
  float alpha = 0.5f, temperature = 2.0f, jsd_beta = 0.5f, hidden_loss = 0, attention_loss = 0, minilm_loss = 0;
  TrainRunArgs run;
  GradualPruneArgs prune;
};

train::KdLoss parse_kd_loss(const std::string& s) {
  if (s == "fkl") return train::KdLoss::ForwardKl;
  if (s == "rkl") return train::KdLoss::ReverseKl;
  if (s == "jsd") return train::KdLoss::Jsd;
  fail("--loss must be fkl (forward KL), rkl (reverse KL) or jsd (got '", s, "')");
}

// "every:2" → the teacher's layers 0, 2, 4, ...; "0,3,5" → those layers.
train::TransformerParams student_by_layers(const train::TransformerParams& teacher, const std::string& spec) {
  if (spec.rfind("every:", 0) == 0) {
    int k = 0;
    try {
      k = std::stoi(spec.substr(6));
    } catch (const std::exception&) {
    }
    SHRINK_CHECK(k >= 1, "--student-layers every:K needs a positive K (got '", spec, "')");
    return train::student_every_kth_layer(teacher, k);
  }
  std::vector<int> layers;
  std::stringstream in(spec);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      layers.push_back(std::stoi(item));
    } catch (const std::exception&) {
      fail("--student-layers must be every:K or a list of teacher layers like 0,2,5 (got '", spec, "')");
    }
  }
  SHRINK_CHECK(!layers.empty(), "--student-layers is empty");
  return train::student_from_layers(teacher, layers);
}

train::TransformerParams make_student(const DistillArgs& a, const train::TransformerParams& teacher) {
  const int given = !a.student.empty() + !a.student_layers.empty() + !a.student_config.empty();
  SHRINK_CHECK(given == 1, "give exactly one of --student MODEL, --student-layers every:K|LIST or --student-config FILE");
  if (!a.student.empty()) return train::TransformerParams::from_model_file(load_model(a.student, LoadOptions{}));
  if (!a.student_layers.empty()) return student_by_layers(teacher, a.student_layers);
  return train::TransformerParams::random(config_from_json_file(a.student_config), a.run.o.seed);
}

void run_distill(const DistillArgs& a) {
  prepare_train_run(a.run);
  LoadOptions lo;
  lo.tokenizer_path = a.tokenizer;
  lo.require_tokenizer = true;
  ModelFile tm = load_model(a.teacher, lo);
  train::TransformerParams teacher = train::TransformerParams::from_model_file(tm);
  train::TransformerParams student = make_student(a, teacher);
  train::DistillSetup setup;
  setup.kd = {parse_kd_loss(a.loss), a.temperature, a.alpha, a.jsd_beta};
  setup.hidden_weight = a.hidden_loss;
  setup.attention_weight = a.attention_loss;
  setup.minilm_weight = a.minilm_loss;
  SHRINK_CHECK(a.hidden_map.empty() || a.hidden_loss > 0 || a.attention_loss > 0,
               "--hidden-map needs --hidden-loss W > 0 or --attention-loss W > 0");
  if (a.hidden_loss > 0 || a.attention_loss > 0) setup.hidden_map = train::parse_hidden_map(a.hidden_map, student.cfg.n_layers, teacher.cfg.n_layers);
  const train::TokenSplit data = load_train_data(a.run, *tm.tokenizer, "distill");
  train::DistillObjective objective(student, teacher, setup, a.run.o.seq_len);
  std::fprintf(stderr, "distill: teacher %s (%.2f M); student %s (%.2f M); %s α=%.2f T=%.2f%s; %zu train / %zu "
               "validation tokens\n", teacher.cfg.summary().c_str(), teacher.count() / 1e6,
               student.cfg.summary().c_str(), student.count() / 1e6, a.loss.c_str(), a.alpha, a.temperature,
               a.hidden_loss > 0 ? (", hidden-state MSE ×" + fmt_num("%g", a.hidden_loss) +
                                    (objective.has_projection() ? " (learned projection)" : "")).c_str() : "",
               data.train.size(), data.valid.size());
  train::TrainObjective to = objective.objective();
  attach_gradual_pruning(a.prune, a.run.o, student, to);
  train::Trainer trainer(student, data.train, data.valid, a.run.o, to);
  run_trainer(trainer, a.run, data, "distill");
  save_trained_model(student, tm.tokenizer, a.run);  // the projection is training-only: not saved
}

}  // namespace

void add_distill(CLI::App& app) {
  auto a = std::make_shared<DistillArgs>();
  auto* cmd = app.add_subcommand(
      "distill",
      "Knowledge distillation: train a student against a frozen teacher, write it as GGUF.\n"
      "Loss = alpha * KD(student, teacher; T) * T^2 + (1 - alpha) * CE(student, text), KD = forward KL\n"
      "(Hinton et al. 2015), token-level reverse KL (MiniLLM's objective, without its policy gradient) or\n"
      "generalized JSD (GKD); optionally + W * hidden-state MSE (TinyBERT) through a learned projection when\n"
      "widths differ. The teacher runs forward on each batch (nothing precomputed). Training flags, checkpoints\n"
      "and --resume are those of `shrink train`.");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--teacher", a->teacher, "Teacher model (Llama or GPT-2: .gguf, HF dir, llama2.c .bin)")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "Tokenizer (default: the teacher's)");
  cmd->add_option("--student", a->student, "Start the student from this model (e.g. a pruned or factorized one)");
  cmd->add_option("--student-layers", a->student_layers,
                  "Student = these teacher layers: every:K (DistilBERT: 0, K, 2K, ...) or a list 0,2,5");
  cmd->add_option("--student-config", a->student_config, "Student shape as JSON, randomly initialised")
      ->check(CLI::ExistingFile);
  cmd->add_option("--loss", a->loss, "KD term: fkl (forward KL), rkl (reverse KL), jsd")->capture_default_str();
  cmd->add_option("--alpha", a->alpha, "Weight of the KD term (1 - alpha on cross-entropy)")->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "Softmax temperature of the KD term")->capture_default_str();
  cmd->add_option("--jsd-beta", a->jsd_beta, "beta of the generalized JSD")->capture_default_str();
  cmd->add_option("--hidden-loss", a->hidden_loss, "Weight W of the hidden-state MSE (0 = off)")
      ->capture_default_str();
  cmd->add_option("--hidden-map", a->hidden_map,
                  "Student:teacher block pairs for the hidden and attention losses, 0-based, e.g. 1:3,3:7 "
                  "(default: last:last)");
  cmd->add_option("--attention-loss", a->attention_loss,
                  "Weight of TinyBERT's attention-score MSE over the --hidden-map pairs (0 = off; equal head counts)")
      ->capture_default_str();
  cmd->add_option("--minilm-loss", a->minilm_loss,
                  "Weight of MiniLM's last-block attention + value-relation KL (0 = off; equal head counts)")
      ->capture_default_str();
  add_train_run_options(cmd, a->run);
  add_gradual_prune_options(cmd, a->prune);
  cmd->callback([a] { run_distill(*a); });
}

}  // namespace shrink::cli
