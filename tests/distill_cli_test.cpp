// `shrink distill` and `shrink finetune --lora` end to end on tiny models made
// in-test (a 4-layer teacher trained for a few steps with `shrink train` on the
// synthetic tokenizer of `shrink init`; no ../shared needed): outputs load in
// eval, the KD loss goes down, a resumed distillation equals an uninterrupted
// one, LoRA with no effective update leaves the model unchanged, bad input is
// one line. Also: the training graph honours per-layer sizes (a structurally
// pruned model) with the same logits as Transformer.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <cstring>

#include "compress/prune/structured.h"
#include "io/gguf.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_util.h"
#include "train/llama_graph.h"

namespace shrink {
namespace {

struct Fixture {
  std::string dir, data;
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// tok.gguf (tokenizer), teacher.gguf (4 layers, dim 32, trained 30 steps), text.txt.
Fixture make_fixture(const std::string& name) {
  Fixture f;
  f.dir = test::temp_dir(name);
  EXPECT_EQ(test::run_shrink("init --preset tiny -o " + f.dir + "/tok.gguf").code, 0);
  std::ofstream(f.dir + "/teacher.json")
      << R"({"dim":32,"hidden_dim":64,"n_layers":4,"n_heads":4,"n_kv_heads":2,"vocab_size":512,"max_seq_len":64})";
  std::ofstream(f.dir + "/student.json")
      << R"({"dim":16,"hidden_dim":32,"n_layers":2,"n_heads":2,"n_kv_heads":1,"vocab_size":512,"max_seq_len":64})";
  std::ofstream text(f.dir + "/text.txt");
  for (int i = 0; i < 3000; ++i) text << "the cat sat on the mat " << (i % 7) << "\n";
  text.close();
  f.data = " --data " + f.dir + "/text.txt --cache-dir " + f.dir + "/cache --batch 2 --seq-len 32 --warmup 2 -t 1";
  const auto r = test::run_shrink("train --config " + f.dir + "/teacher.json --tokenizer " + f.dir + "/tok.gguf" +
                                  f.data + " --steps 30 --lr 3e-3 -o " + f.dir + "/teacher.gguf");
  EXPECT_EQ(r.code, 0) << r.out;
  return f;
}

// Train losses of a CSV log, in step order.
std::vector<double> train_losses(const std::string& csv) {
  std::vector<double> out;
  std::stringstream in(slurp(csv));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::stringstream row(line);
    std::string step, tokens, loss;
    std::getline(row, step, ',');
    std::getline(row, tokens, ',');
    std::getline(row, loss, ',');
    if (!loss.empty()) out.push_back(std::stod(loss));
  }
  return out;
}

TEST(DistillCli, StudentOfEveryOtherLayerLearnsAndLoads) {
  const Fixture f = make_fixture("distill_cli");
  const auto r = test::run_shrink("distill --teacher " + f.dir + "/teacher.gguf --student-layers every:2 --loss fkl "
                                  "--alpha 1 --temperature 1 --steps 20 --lr 3e-3 --val-every 10 --log " + f.dir +
                                  "/log.csv" + f.data + " -o " + f.dir + "/student.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("validation loss"), std::string::npos) << r.out;
  const std::vector<double> loss = train_losses(f.dir + "/log.csv");
  ASSERT_EQ(loss.size(), 20u);
  const double first = (loss[0] + loss[1] + loss[2]) / 3, last = (loss[17] + loss[18] + loss[19]) / 3;
  std::printf("distill fkl: KD loss %.4f -> %.4f over 20 steps\n", first, last);
  EXPECT_LT(last, first);
  const auto e = test::run_shrink("eval " + f.dir + "/student.gguf --ppl " + f.dir + "/text.txt -c 32 --chunks 2 -t 1");
  EXPECT_EQ(e.code, 0) << e.out;
  const auto i = test::run_shrink("inspect " + f.dir + "/student.gguf");
  EXPECT_NE(i.out.find("layers 2,"), std::string::npos) << i.out;  // 2 of the teacher's 4 layers
  // A narrower random student with the hidden-state loss through a projection, and the other KD terms.
  for (const std::string loss_kind : {"rkl", "jsd"}) {
    const auto h = test::run_shrink("distill --teacher " + f.dir + "/teacher.gguf --student-config " + f.dir +
                                    "/student.json --loss " + loss_kind + " --hidden-loss 0.5 --hidden-map 0:1,1:3 "
                                    "--steps 3" + f.data + " -o " + f.dir + "/narrow.gguf");
    ASSERT_EQ(h.code, 0) << h.out;
    EXPECT_NE(h.out.find("learned projection"), std::string::npos) << h.out;
    EXPECT_EQ(test::run_shrink("run " + f.dir + "/narrow.gguf -p \"the cat\" -n 2 -t 1").code, 0);
  }
  std::filesystem::remove_all(f.dir);
}

// TinyBERT's attention-score MSE and MiniLM's relation KL: zero for a student
// that is the teacher (every layer, so every pair matches), they train a
// half-depth student, and a student with other head counts is refused.
TEST(DistillCli, AttentionMapAndMiniLmLosses) {
  const Fixture f = make_fixture("distill_attn");
  const std::string teacher = "distill --teacher " + f.dir + "/teacher.gguf ";
  const auto same = test::run_shrink(teacher + "--student-layers every:1 --alpha 1 --temperature 1 --attention-loss 1 "
                                     "--hidden-map 0:0,3:3 --minilm-loss 1 --steps 1 --lr 1e-9 --min-lr 0 --log " + f.dir +
                                     "/same.csv" + f.data + " -o " + f.dir + "/same.gguf");
  ASSERT_EQ(same.code, 0) << same.out;
  const std::vector<double> zero = train_losses(f.dir + "/same.csv");
  ASSERT_EQ(zero.size(), 1u);
  EXPECT_NEAR(zero[0], 0.0, 1e-5);
  const auto r = test::run_shrink(teacher + "--student-layers every:2 --alpha 0.5 --attention-loss 1 --hidden-map "
                                  "0:1,1:3 --minilm-loss 1 --steps 12 --lr 3e-3 --log " + f.dir + "/attn.csv" + f.data +
                                  " -o " + f.dir + "/attn.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::vector<double> loss = train_losses(f.dir + "/attn.csv");
  ASSERT_EQ(loss.size(), 12u);
  EXPECT_LT(loss[9] + loss[10] + loss[11], loss[0] + loss[1] + loss[2]);
  const auto bad = test::run_shrink(teacher + "--student-config " + f.dir + "/student.json --minilm-loss 1 --steps 1" +
                                    f.data + " -o " + f.dir + "/bad.gguf");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("head by head"), std::string::npos) << bad.out;
  std::filesystem::remove_all(f.dir);
}

TEST(DistillCli, KilledDistillationResumesToTheSameBytes) {
  const Fixture f = make_fixture("distill_kill");
  const std::string base = "distill --teacher " + f.dir + "/teacher.gguf --student-config " + f.dir +
                           "/student.json --loss fkl --hidden-loss 0.5 --steps 30" + f.data;
  ASSERT_EQ(test::run_shrink(base + " -o " + f.dir + "/whole.gguf").code, 0);
  const std::string ck = f.dir + "/ck";
  const std::string cmd = "sh -c '" + std::string(SHRINK_BINARY) + " " + base + " --ckpt-dir " + ck +
                          " --ckpt-every 1 -o " + f.dir + "/part.gguf >/dev/null 2>&1 & pid=$!; "
                          "while [ ! -f " + ck + "/last.ckpt ]; do sleep 0.01; done; kill -9 $pid; wait $pid'";
  ASSERT_NE(std::system(cmd.c_str()), -1);
  ASSERT_TRUE(std::filesystem::exists(ck + "/last.ckpt"));
  const auto r = test::run_shrink(base + " --ckpt-dir " + ck + " --resume -o " + f.dir + "/part.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(f.dir + "/whole.gguf"), slurp(f.dir + "/part.gguf"));
  // Resuming with another KD setting is refused.
  const auto bad = test::run_shrink(base + " --alpha 0.9 --ckpt-dir " + ck + " --resume -o " + f.dir + "/x.gguf");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("objective"), std::string::npos) << bad.out;
  std::filesystem::remove_all(f.dir);
}

float max_tensor_diff(const ModelFile& a, const ModelFile& b) {
  float worst = 0;
  for (const auto& [name, t] : a.tensors) {
    const Tensor u = t.to(DType::F32), v = b.get(name).to(DType::F32);
    EXPECT_EQ(u.numel(), v.numel()) << name;
    for (int64_t i = 0; i < u.numel(); ++i) worst = std::max(worst, std::abs(u.f32()[i] - v.f32()[i]));
  }
  return worst;
}

TEST(FinetuneCli, LoraTrainsMergesAndLoads) {
  const Fixture f = make_fixture("finetune_cli");
  const std::string model = f.dir + "/teacher.gguf";
  // A vanishing learning rate: the adapters' B stays ~0, so the merged model is the base.
  const auto z = test::run_shrink("finetune " + model + " --lora r=4 --steps 1 --lr 1e-30 --min-lr 0" + f.data +
                                  " -o " + f.dir + "/same.gguf");
  ASSERT_EQ(z.code, 0) << z.out;
  EXPECT_EQ(max_tensor_diff(load_model(model), load_model(f.dir + "/same.gguf")), 0.0f);
  // Real steps change only the adapted Linears, and lower the loss.
  const auto r = test::run_shrink("finetune " + model + " --lora r=4,alpha=8 --lora-targets q,v,down --steps 15 "
                                  "--lr 1e-2 --keep-adapters --log " + f.dir + "/log.csv" + f.data + " -o " + f.dir + "/ft.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  // The adapters file: llama.cpp's layout, A {r, in} stored as ne = {in, r}.
  const GgufFile ad = read_gguf(f.dir + "/ft.lora.gguf");
  EXPECT_EQ(std::get<std::string>(ad.get("adapter.type").v), "lora");
  const GgufTensorInfo* a0 = ad.find_tensor("blk.0.attn_q.weight.lora_a");
  ASSERT_NE(a0, nullptr);
  EXPECT_EQ(a0->ne, (std::vector<uint64_t>{32, 4}));
  EXPECT_EQ(ad.find_tensor("blk.0.attn_k.weight.lora_a"), nullptr);
  const ModelFile base = load_model(model), ft = load_model(f.dir + "/ft.gguf");
  EXPECT_GT(max_tensor_diff(base, ft), 0.0f);
  for (const auto& [name, t] : base.tensors) {
    const std::string role = train::linear_role(name);
    const bool adapted = role == "q" || role == "v" || role == "down";
    const Tensor u = t.to(DType::F32), v = ft.get(name).to(DType::F32);
    EXPECT_EQ(std::memcmp(u.f32(), v.f32(), size_t(u.numel()) * 4) != 0, adapted) << name;
  }
  const std::vector<double> loss = train_losses(f.dir + "/log.csv");
  ASSERT_EQ(loss.size(), 15u);
  EXPECT_LT(loss[14] + loss[13], loss[0] + loss[1]);
  EXPECT_EQ(test::run_shrink("eval " + f.dir + "/ft.gguf --ppl " + f.dir + "/text.txt -c 32 --chunks 2 -t 1").code, 0);
  // With a teacher: the KD loss over the adapters.
  const auto kd = test::run_shrink("finetune " + model + " --teacher " + model + " --lora r=2 --steps 2" + f.data +
                                   " -o " + f.dir + "/kd.gguf");
  EXPECT_EQ(kd.code, 0) << kd.out;
  EXPECT_NE(kd.out.find("KD from the teacher"), std::string::npos) << kd.out;
  std::filesystem::remove_all(f.dir);
}

TEST(DistillCli, BadInputIsAOneLineError) {
  const Fixture f = make_fixture("distill_bad");
  auto expect_error = [](const test::CliResult& r, const std::string& needle) {
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("shrink: error: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
  };
  const std::string d = "distill --teacher " + f.dir + "/teacher.gguf --steps 2" + f.data + " -o " + f.dir + "/o.gguf";
  expect_error(test::run_shrink(d), "exactly one");
  expect_error(test::run_shrink(d + " --student-layers every:0"), "every:K");
  expect_error(test::run_shrink(d + " --student-layers 0,9"), "layer 9");
  expect_error(test::run_shrink(d + " --student-layers every:2 --loss kl"), "--loss");
  expect_error(test::run_shrink(d + " --student-layers every:2 --alpha 2"), "--alpha");
  expect_error(test::run_shrink(d + " --student-layers every:2 --hidden-loss 1 --hidden-map 5:0"), "student layer 5");
  expect_error(test::run_shrink(d + " --student-layers every:2 --hidden-map 1:3"), "--hidden-loss");
  const std::string ft = "finetune " + f.dir + "/teacher.gguf --steps 2" + f.data + " -o " + f.dir + "/o.gguf";
  expect_error(test::run_shrink(ft + " --lora r=0"), "--lora");
  expect_error(test::run_shrink(ft + " --lora rank"), "--lora");
  expect_error(test::run_shrink(ft + " --lora-targets qq"), "qq");
  expect_error(test::run_shrink(ft + " --steps 0"), "--steps");
  std::filesystem::remove_all(f.dir);
}

// The training graph of a structurally pruned model (per-layer heads, KV heads
// and FFN widths) gives Transformer's logits; LoRA fine-tuning needs this.
TEST(DistillCli, TrainingGraphHonoursPerLayerSizes) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.dim = 64, c.hidden_dim = 96, c.n_layers = 3, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 300;
  c.max_seq_len = 64;
  c.validate("test");
  ModelFile m = random_model(c, DType::F32, 7);
  for (auto& [name, t] : m.tensors)
    if (name.rfind("blk.", 0) == 0 && t.ndim() == 2)
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] *= 8.0f;
  prune::StructuredPlan heads;
  heads.kind = prune::StructKind::Heads;
  heads.removed = {{0}, {}, {1}};
  m = prune::remove_groups(m, heads);
  prune::StructuredPlan channels;
  channels.kind = prune::StructKind::Channels;
  channels.removed = {{1, 5, 9, 40}, {}, {0, 2, 3, 4, 50, 60}};
  m = prune::remove_groups(m, channels);
  ASSERT_FALSE(m.config.uniform());
  const int n = 16;
  std::mt19937 rng(3);
  std::vector<int32_t> tokens(n);
  for (auto& t : tokens) t = int32_t(rng() % c.vocab_size);
  Transformer model(m);
  KVCache cache = model.new_cache(n);
  std::vector<float> ref(size_t(n) * c.vocab_size);
  model.forward(tokens.data(), n, cache, ref.data(), true);
  train::TransformerParams p = train::TransformerParams::from_model_file(m);
  train::Graph g;
  train::Var logits = train::llama_logits(g, p, tokens, n);
  float worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(logits->v()[i] - ref[i]));
  EXPECT_LT(worst, 1e-3f);
}

}  // namespace
}  // namespace shrink
