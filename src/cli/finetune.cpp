// shrink finetune MODEL --lora r=8[,alpha=16] [--lora-targets all|q,k,v,o,gate,up,down|qkv,o,up,down] --data FILE -o OUT.gguf
// LoRA fine-tuning (Hu et al. 2021) with the base frozen: the recovery step
// after structured pruning (LLM-Pruner). Cross-entropy on the text, or with
// --teacher the distillation loss of `shrink distill`. The adapters are merged
// into the weights at the end, so the output is a plain model.
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/train_common.h"
#include "core/error.h"
#include "train/distill_objective.h"
#include "train/lora.h"
#include "train/lora_gguf.h"

namespace shrink::cli {

namespace {

struct FinetuneArgs {
  ModelArgs model;
  std::string lora = "r=8", targets = "all", teacher, loss = "fkl";
  float alpha = 0.5f, temperature = 2.0f;
  bool keep_adapters = false;
  TrainRunArgs run;
};

// "r=8" or "r=8,alpha=16" (alpha defaults to 2r, PEFT's common choice).
train::LoraConfig parse_lora(const std::string& spec) {
  train::LoraConfig c;
  bool alpha_given = false, rank_given = false;
  std::stringstream in(spec);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq), val = eq == std::string::npos ? "" : item.substr(eq + 1);
    try {
      size_t used = 0;
      if (key == "r" || key == "rank") {
        c.rank = std::stoi(val, &used);
        rank_given = used == val.size();
      } else if (key == "alpha") {
        c.alpha = std::stof(val, &used);
        alpha_given = used == val.size();
      } else {
        used = 0;
      }
      SHRINK_CHECK(used > 0 && used == val.size(), "");
    } catch (const std::exception&) {
      fail("--lora must be r=RANK[,alpha=A] (got '", spec, "')");
    }
  }
  SHRINK_CHECK(rank_given && c.rank > 0, "--lora must be r=RANK[,alpha=A] with RANK > 0 (got '", spec, "')");
  SHRINK_CHECK(c.alpha > 0, "--lora alpha must be positive (got '", spec, "')");
  if (!alpha_given) c.alpha = 2.0f * float(c.rank);
  return c;
}

void run_finetune(const FinetuneArgs& a) {
  prepare_train_run(a.run);
  train::LoraConfig lc = parse_lora(a.lora);
  ModelArgs ma = a.model;
  ma.threads = a.run.threads;
  ModelFile m = open_model(ma, true);
  lc.targets = train::parse_lora_targets(a.targets, m.config.arch);
  lc.seed = a.run.o.seed;
  train::TransformerParams model = train::TransformerParams::from_model_file(m);
  train::LoraAdapters lora(model, lc);
  SHRINK_CHECK(lora.size() > 0, "--lora-targets ", a.targets, " matches no Linear of ", a.model.model);
  const train::TokenSplit data = load_train_data(a.run, *m.tokenizer, "finetune");
  train::GraphOptions go;
  go.freeze_base = true;
  go.lora = &lora;
  const nlohmann::json lora_json = {{"rank", lc.rank}, {"alpha", lc.alpha}, {"targets", lc.targets}};
  std::unique_ptr<train::TransformerParams> teacher;
  std::unique_ptr<train::DistillObjective> kd;
  train::TrainObjective objective;
  if (!a.teacher.empty()) {
    teacher = std::make_unique<train::TransformerParams>(train::TransformerParams::from_model_file(load_model(a.teacher, {})));
    train::DistillSetup setup;
    SHRINK_CHECK(a.loss == "fkl" || a.loss == "rkl" || a.loss == "jsd", "--loss must be fkl, rkl or jsd");
    setup.kd = {a.loss == "fkl" ? train::KdLoss::ForwardKl : a.loss == "rkl" ? train::KdLoss::ReverseKl
                                                                           : train::KdLoss::Jsd,
                a.temperature, a.alpha};
    kd = std::make_unique<train::DistillObjective>(model, *teacher, setup, a.run.o.seq_len, go, lora.params());
    objective = kd->objective();
  } else {
    objective.graph_options = go;
    objective.params = lora.params();
  }
  objective.trajectory["lora"] = lora_json;
  std::fprintf(stderr, "finetune: %s; LoRA r=%d alpha=%g on %zu Linears (%.3f M trainable of %.2f M)%s; %zu train / "
               "%zu validation tokens\n", model.cfg.summary().c_str(), lc.rank, lc.alpha, lora.size(),
               lora.count() / 1e6, model.count() / 1e6, teacher ? ", KD from the teacher" : "", data.train.size(),
               data.valid.size());
  train::Trainer trainer(model, data.train, data.valid, a.run.o, objective);
  run_trainer(trainer, a.run, data, "finetune");
  if (a.keep_adapters) {
    const std::string path = a.run.out.substr(0, a.run.out.size() - 5) + ".lora.gguf";
    train::save_lora_adapters_gguf(lora, arch_name(model.cfg.arch), lc.alpha, path);
    std::fprintf(stderr, "finetune: wrote the adapters to %s\n", path.c_str());
  }
  lora.merge_into(model);
  save_trained_model(model, m.tokenizer, a.run);
}

}  // namespace

void add_finetune(CLI::App& app) {
  auto a = std::make_shared<FinetuneArgs>();
  auto* cmd = app.add_subcommand(
      "finetune",
      "LoRA fine-tuning with the base frozen (the recovery step after pruning), adapters merged into the\n"
      "weights at the end: W <- W + (alpha/r) B A. Cross-entropy on --data, or with --teacher the distillation\n"
      "loss of `shrink distill`. Llama and GPT-2 models; structurally pruned (per-layer sized) Llamas too.\n"
      "Training flags, checkpoints (of the adapters) and --resume are those of `shrink train`.");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("model", a->model.model, "Model to fine-tune: .gguf, HF directory, llama2.c .bin")->required();
  cmd->add_option("--tokenizer", a->model.tokenizer, "Tokenizer (default: the model's)");
  cmd->add_option("--lora", a->lora, "Adapters: r=RANK[,alpha=A] (alpha default 2*RANK)")->capture_default_str();
  cmd->add_option("--lora-targets", a->targets,
                  "Linears to adapt: all (every block Linear), or a list of q,k,v,o,gate,up,down,head (Llama) "
                  "or qkv,o,up,down,head (GPT-2)")
      ->capture_default_str();
  cmd->add_option("--teacher", a->teacher, "Distil from this teacher instead of plain cross-entropy");
  cmd->add_option("--loss", a->loss, "With --teacher: fkl, rkl or jsd")->capture_default_str();
  cmd->add_option("--alpha", a->alpha, "With --teacher: weight of the KD term")->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "With --teacher: KD temperature")->capture_default_str();
  cmd->add_flag("--keep-adapters", a->keep_adapters,
                "Also write the unmerged adapters to OUT.lora.gguf (llama.cpp's LoRA adapter layout)");
  add_train_run_options(cmd, a->run);
  cmd->callback([a] { run_finetune(*a); });
}

}  // namespace shrink::cli
