// `shrink train / finetune / distill` on GPT-2-architecture models, end to
// end on tiny shapes: each writes a GGUF that `shrink eval` loads, and what
// cannot work for GPT-2 fails with one clear line. The tokenizer is the
// synthetic vocabulary embedded by `shrink init` (no ../shared needed).
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace shrink {
namespace {

struct Gpt2Fixture {
  std::string dir, data;  // data: the --data/--cache-dir flags
};

Gpt2Fixture make_gpt2_fixture(const std::string& name) {
  Gpt2Fixture f;
  f.dir = test::temp_dir(name);
  EXPECT_EQ(test::run_shrink("init --preset tiny -o " + f.dir + "/tok.gguf").code, 0);
  std::ofstream(f.dir + "/gpt2.json")
      << R"({"arch":"gpt2","dim":32,"hidden_dim":64,"n_layers":2,"n_heads":4,"vocab_size":512,"max_seq_len":64})";
  std::ofstream(f.dir + "/student.json")
      << R"({"arch":"gpt2","dim":16,"hidden_dim":32,"n_layers":1,"n_heads":2,"vocab_size":512,"max_seq_len":64})";
  std::ofstream text(f.dir + "/text.txt");
  for (int i = 0; i < 2000; ++i) text << "the cat sat on the mat " << (i % 7) << "\n";
  text.close();
  f.data = " --data " + f.dir + "/text.txt --cache-dir " + f.dir + "/cache --batch 2 --seq-len 32 --warmup 1 -t 1";
  return f;
}

void expect_eval_loads(const std::string& model, const std::string& text) {
  const auto e = test::run_shrink("eval " + model + " --ppl " + text + " -c 32 --chunks 2 -t 1");
  EXPECT_EQ(e.code, 0) << e.out;
  EXPECT_NE(e.out.find("PPL"), std::string::npos) << e.out;
}

TEST(Gpt2TrainCli, TrainFinetuneAndDistill) {
  const Gpt2Fixture f = make_gpt2_fixture("gpt2_train_cli");
  const std::string teacher = f.dir + "/gpt2.gguf";
  auto r = test::run_shrink("train --config " + f.dir + "/gpt2.json --tokenizer " + f.dir + "/tok.gguf" + f.data +
                            " --steps 6 --lr 3e-3 --val-every 3 -o " + teacher);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("gpt2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("validation loss"), std::string::npos) << r.out;
  expect_eval_loads(teacher, f.dir + "/text.txt");

  r = test::run_shrink("train --init " + teacher + f.data + " --steps 2 -o " + f.dir + "/cont.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  expect_eval_loads(f.dir + "/cont.gguf", f.dir + "/text.txt");

  r = test::run_shrink("finetune " + teacher + " --lora r=4" + f.data + " --steps 3 --keep-adapters -o " + f.dir +
                       "/ft.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("on 8 Linears"), std::string::npos) << r.out;  // qkv, o, up, down x 2 blocks
  expect_eval_loads(f.dir + "/ft.gguf", f.dir + "/text.txt");

  r = test::run_shrink("distill --teacher " + teacher + " --student-layers every:2" + f.data + " --steps 3 -o " + f.dir +
                       "/every2.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto i = test::run_shrink("inspect " + f.dir + "/every2.gguf");
  EXPECT_NE(i.out.find("layers 1"), std::string::npos) << i.out;
  expect_eval_loads(f.dir + "/every2.gguf", f.dir + "/text.txt");

  r = test::run_shrink("distill --teacher " + teacher + " --student-config " + f.dir + "/student.json --hidden-loss 1" +
                       f.data + " --steps 2 -o " + f.dir + "/small.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  expect_eval_loads(f.dir + "/small.gguf", f.dir + "/text.txt");

  r = test::run_shrink("qat " + teacher + " --type q4_0" + f.data + " --steps 2 -o " + f.dir + "/q4.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  expect_eval_loads(f.dir + "/q4.gguf", f.dir + "/text.txt");
}

TEST(Gpt2TrainCli, WhatCannotWorkIsAOneLineError) {
  const Gpt2Fixture f = make_gpt2_fixture("gpt2_train_cli_bad");
  const std::string teacher = f.dir + "/gpt2.gguf";
  ASSERT_EQ(test::run_shrink("train --config " + f.dir + "/gpt2.json --tokenizer " + f.dir + "/tok.gguf" + f.data +
                             " --steps 1 -o " + teacher).code, 0);
  auto r = test::run_shrink("finetune " + teacher + " --lora r=4 --lora-targets q,v" + f.data + " --steps 1 -o " +
                            f.dir + "/x.gguf");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("fused Linear, qkv"), std::string::npos) << r.out;
  r = test::run_shrink("qat " + teacher + " --type int4g32sym" + f.data + " --steps 1 -o " + f.dir + "/qdir");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("no GPT-2 form"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("step 1"), std::string::npos) << "refused only after training: " << r.out;
  // A Llama student of a GPT-2 teacher is fine (same vocabulary); a sequence longer than the learned positions is not.
  r = test::run_shrink("train --init " + teacher + f.data + " --steps 1 --seq-len 100 -o " + f.dir + "/y.gguf");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("longer than the model's context"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace shrink
