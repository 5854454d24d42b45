// shrink qat MODEL --type q4_0|q2_k|int4g32sym|... [--lsq] [--init rtn|gptq] [--teacher self|T.gguf]
//            --data TEXT [--ppl TEXT] -o OUT.gguf|DIR
// Quantization-aware training toward a real format (train/qat.h): every tensor
// `shrink quantize --type T` would quantize is fake-quantized in the forward
// exactly as its writer rounds it (STE; LSQ's learned scales with --lsq), the
// model is trained by train::Trainer (cross-entropy, or KD from a teacher),
// then written in that format: GGUF for ggml block types, a Hugging Face
// directory (compressed-tensors pack-quantized) for shrink's group formats.
// With --ppl it reports the fake-quant graph's perplexity and that of the
// written file reloaded, under `shrink eval --ppl`'s protocol (whole windows,
// f32 activations: equal to the graph's without --act-quant) and with
// decode's Q8 activations (--ubatch 8: equal to the graph's with
// --act-quant runtime).
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/train_common.h"
#include "compress/calib/calib.h"
#include "core/error.h"
#include "core/file.h"
#include "train/distill_objective.h"
#include "train/qat.h"

namespace shrink::cli {

namespace {

struct QatArgs {
  ModelArgs model;
  std::string type, init = "rtn", teacher, loss = "fkl", calib_file, ppl_file, act_quant = "none";
  bool lsq = false, keep_head = false, keep_embed = false;
  float alpha = 1.0f, temperature = 1.0f;
  int64_t calib_tokens = 32768;
  int ctx = 256, chunks = -1;
  TrainRunArgs run;
};

quant::QuantizeOptions qat_options(const QatArgs& a, const ModelFile& m) {
  quant::QuantizeOptions opt = quant::type_options(quant::QuantTarget::parse(a.type), m.config.tied_embeddings);
  opt.quantize_head = !a.keep_head;
  if (a.keep_embed) opt.quantize_embed = false;
  train::check_qat_target(opt.target, a.lsq);
  const bool all_block = opt.target.is_block && (!opt.quantize_head || opt.head.is_block);
  SHRINK_CHECK(all_block == is_gguf_path(a.run.out), "-o ", a.run.out, ": ",
               all_block ? opt.target.name() + " is a ggml type: write a .gguf file"
                         : opt.target.name() + " is a group format, which GGUF cannot hold: give a directory (a "
                                               "Hugging Face model, compressed-tensors pack-quantized)");
  return opt;
}

// --init gptq: the block Linears start at GPTQ's result on --calib (weights and, with --lsq, scales).
void start_from_gptq(const QatArgs& a, const ModelFile& m, const quant::QuantizeOptions& opt, train::TransformerParams& p,
                     train::QatQuantizer& qat) {
  SHRINK_CHECK(!a.calib_file.empty(), "--init gptq needs calibration text: --calib FILE");
  Transformer q(m);
  quant::QuantizeOptions go = opt;
  go.method = "gptq";
  go.quantize_embed = false;
  const calib::CalibSet calib = calib::make_calib_set(*m.tokenizer, read_text_file(a.calib_file), a.calib_tokens, 512);
  quant::quantize_model(q, calib, go, [](int layer, int n, const std::string& what) {
    progress_line("qat: GPTQ start: layer " + std::to_string(std::min(layer + 1, n)) + "/" + std::to_string(n) + " " + what);
  });
  progress_line("qat: GPTQ start done", true);
  qat.start_from(p, q);
}

// Forward calls of this many tokens take every quantized kernel's Q8-activation path (qmatmul below 64/128
// rows, group products below 16), as decode does.
constexpr int kQ8Ubatch = 8;

void report_ppl(const QatArgs& a, const char* what, double ppl, int64_t scored, int chunks) {
  std::printf("qat: %s: PPL %.4f (%s, %d windows of %d, %lld tokens scored)\n", what, ppl, a.ppl_file.c_str(), chunks,
              a.ctx, (long long)scored);
}

void run_qat(const QatArgs& a) {
  SHRINK_CHECK(a.run.dtype == "f32", "--dtype does not apply to qat: the output is --type, its dense tensors f32");
  prepare_train_run(a.run, false);
  ModelArgs ma = a.model;
  ma.threads = a.run.threads;
  ModelFile m = open_model(ma, true);
  // Checked before training: save_quantized_hf refuses GPT-2 only when writing.
  SHRINK_CHECK(m.config.arch != Arch::GPT2 || is_gguf_path(a.run.out), a.model.model,
               ": a GPT-2 model can be QAT-trained toward ggml types written as GGUF (-o FILE.gguf), not toward "
               "group formats (a Hugging Face compressed-tensors directory has no GPT-2 form)");
  const quant::QuantizeOptions opt = qat_options(a, m);
  SHRINK_CHECK(a.init == "rtn" || a.init == "gptq", "--init must be rtn or gptq (got '", a.init, "')");
  train::TransformerParams model = train::TransformerParams::from_model_file(m);
  const auto act = a.act_quant == "runtime" ? train::QatActivations::Runtime : train::QatActivations::None;
  train::QatQuantizer qat(model, opt, a.lsq, act);
  if (a.init == "gptq") start_from_gptq(a, m, opt, model, qat);
  const train::TokenSplit data = load_train_data(a.run, *m.tokenizer, "qat");

  train::GraphOptions go;
  go.fake_quant = &qat;
  std::vector<train::Parameter*> params = model.all();
  for (train::Parameter* s : qat.params()) params.push_back(s);
  std::unique_ptr<train::TransformerParams> teacher;
  std::unique_ptr<train::DistillObjective> kd;
  train::TrainObjective objective;
  if (!a.teacher.empty()) {
    teacher = std::make_unique<train::TransformerParams>(
        a.teacher == "self" ? train::TransformerParams::from_model_file(m)
                            : train::TransformerParams::from_model_file(load_model(a.teacher, {})));
    SHRINK_CHECK(a.loss == "fkl" || a.loss == "rkl" || a.loss == "jsd", "--loss must be fkl, rkl or jsd");
    train::DistillSetup setup;
    setup.kd = {a.loss == "fkl" ? train::KdLoss::ForwardKl : a.loss == "rkl" ? train::KdLoss::ReverseKl
                                                                           : train::KdLoss::Jsd,
                a.temperature, a.alpha};
    kd = std::make_unique<train::DistillObjective>(model, *teacher, setup, a.run.o.seq_len, go, params);
    objective = kd->objective();
  } else {
    objective.graph_options = go;
    objective.params = params;
  }
  nlohmann::json plan_json = nlohmann::json::object();
  std::string plan_text;
  for (const auto& [name, what] : qat.plan()) {
    plan_json[name] = what;
    if (name.rfind("blk.", 0) != 0 || name.rfind("blk.0.", 0) == 0) plan_text += "\n  " + name + ": " + what;
  }
  objective.trajectory["qat"] = {{"type", opt.target.name()}, {"lsq", a.lsq}, {"init", a.init}, {"act", a.act_quant},
                                 {"teacher", a.teacher}, {"plan", plan_json}};
  std::fprintf(stderr, "qat: %s; %zu tensors fake-quantized (blocks 1.. as block 0):%s\nqat: %zu train / %zu "
               "validation tokens%s\n", model.cfg.summary().c_str(), qat.plan().size(), plan_text.c_str(),
               data.train.size(), data.valid.size(), teacher ? ", KD from the teacher" : "");
  train::Trainer trainer(model, data.train, data.valid, a.run.o, objective);
  run_trainer(trainer, a.run, data, "qat");

  std::vector<int32_t> ppl_tokens;
  int32_t bos = 0;
  if (!a.ppl_file.empty()) {
    ppl_tokens = m.tokenizer->encode(read_text_file(a.ppl_file), true);
    bos = m.tokenizer->bos_id() >= 0 ? m.tokenizer->bos_id() : ppl_tokens.front();
    const auto r = train::graph_perplexity(model, go, ppl_tokens, a.ctx, a.chunks, bos);
    report_ppl(a, "fake-quant graph", r.ppl, r.scored, r.chunks);
  }
  auto exported = qat.export_model(model, m);
  if (is_gguf_path(a.run.out)) {
    ModelFile out = m;
    exported->export_to(out);
    save_gguf_model(out, a.run.out);
  } else {
    save_quantized_hf(*exported, m, a.run.out, DType::F32, true);  // dense tensors f32: exactly the trained values
  }
  std::printf("qat: wrote %s (%s)\n", a.run.out.c_str(), human_bytes(double(path_bytes(a.run.out))).c_str());
  if (!a.ppl_file.empty()) {
    const ModelFile written = load_model(a.run.out, {});
    Transformer t(written);
    eval::PerplexityOptions po;
    po.n_ctx = a.ctx, po.chunks = a.chunks, po.bos_id = bos;
    const auto r = eval::perplexity(t, ppl_tokens, po);
    report_ppl(a, "written model, f32 activations (as `shrink eval --ppl`)", r.ppl, r.scored, r.chunks);
    po.ubatch = kQ8Ubatch;
    const auto rq = eval::perplexity(t, ppl_tokens, po);
    report_ppl(a, ("written model, Q8 activations as at decode (`shrink eval --ppl --ubatch " +
                   std::to_string(kQ8Ubatch) + "`)").c_str(), rq.ppl, rq.scored, rq.chunks);
  }
}

}  // namespace

void add_qat(CLI::App& app) {
  auto a = std::make_shared<QatArgs>();
  auto* cmd = app.add_subcommand(
      "qat",
      "Quantization-aware training toward a real format, then writing it: the tensors `shrink quantize --type T`\n"
      "would quantize (same head/embedding policy) are rounded in the forward exactly as the writer rounds them\n"
      "(straight-through gradients; --lsq: learned per-group scales, LSQ), trained with `shrink train`'s loop\n"
      "(cross-entropy, or KD with --teacher), and written as T: GGUF for ggml types, a HF directory for group\n"
      "formats. The written weights dequantize to the trained fake-quant weights bit for bit.\n"
      "Starting from a trained model, use small learning rates (teacher-9M: --lr 2e-5 at 4 bits, 1e-4 at 2 bits,\n"
      "--wd 0; the default 1e-3 undoes more than the rounding costs).");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("model", a->model.model, "Model to quantize (f32/f16/bf16): .gguf, HF directory, llama2.c .bin")
      ->required();
  cmd->add_option("--tokenizer", a->model.tokenizer, "Tokenizer (default: the model's)");
  cmd->add_option("--type", a->type,
                  "Target: a ggml block type (q4_0, q2_k, q3_k, q4_k, q5_0, q8_0, ...; written as GGUF) or a group "
                  "format (int4g32sym, int2g32sym, int4g128, nf4g64, ...; written as a HF directory). OneBit and "
                  "dense types are refused")
      ->required();
  cmd->add_flag("--lsq", a->lsq,
                "Learn the block Linears' scales (LSQ, Esser et al. 2020), starting from RTN's; only q4_0 (f16 "
                "scales, learned then rounded to f16 in every forward) and symmetric integer groups intBgGsym");
  cmd->add_option("--init", a->init,
                  "Starting point of the block Linears: rtn (the f32 weights, RTN's scales) or gptq (GPTQ's result "
                  "on --calib: its dequantized weights and, with --lsq, its scales)")
      ->capture_default_str();
  cmd->add_option("--act-quant", a->act_quant,
                  "Activations in training: none (f32, as shrink's prefill multiplies) or runtime (each quantized "
                  "Linear's input rounded as its decode kernel rounds it: ggml's Q8_0/Q8_1 per 32 for 32-blocks, "
                  "Q8_K per 256 for K-quants, int8 per 16 words for int2/4/8 groups; llama.cpp's CPU backend "
                  "rounds so at every batch size). Straight-through gradients")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "runtime"}));
  cmd->add_option("--calib", a->calib_file, "--init gptq: calibration text")->check(CLI::ExistingFile);
  cmd->add_option("--calib-tokens", a->calib_tokens, "--init gptq: calibration tokens")->capture_default_str();
  cmd->add_flag("--keep-head", a->keep_head, "Leave the output head unquantized (as `shrink quantize --keep-head`)");
  cmd->add_flag("--keep-embed", a->keep_embed, "Leave the token embedding unquantized (as `shrink quantize --keep-embed`)");
  cmd->add_option("--teacher", a->teacher,
                  "Distil from this teacher (.gguf, ...) or 'self' (the unquantized MODEL, frozen) instead of "
                  "plain cross-entropy");
  cmd->add_option("--loss", a->loss, "With --teacher: fkl, rkl or jsd")->capture_default_str();
  cmd->add_option("--alpha", a->alpha, "With --teacher: weight of the KD term (1 = KD only)")->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "With --teacher: KD temperature")->capture_default_str();
  cmd->add_option("--ppl", a->ppl_file,
                  "After training: perplexity of the fake-quant graph and of the written file (reloaded) on this "
                  "text, with `shrink eval --ppl`'s protocol")
      ->check(CLI::ExistingFile);
  cmd->add_option("-c,--ctx", a->ctx, "--ppl window length")->capture_default_str();
  cmd->add_option("--chunks", a->chunks, "--ppl: first K windows only (-1 = all)")->capture_default_str();
  add_train_run_options(cmd, a->run);
  cmd->get_option("-o")->description(
      "Output: FILE.gguf for ggml types, a directory (Hugging Face model, compressed-tensors pack-quantized, dense "
      "tensors f32) for group formats");
  cmd->get_option("--dtype")->description("Not used by qat (the output is --type; dense tensors stay f32)");
  cmd->callback([a] { run_qat(*a); });
}

}  // namespace shrink::cli
