// `shrink train` end to end on a tiny config: writes a GGUF that eval and run
// load, resumes after kill -9 with the same bytes as an uninterrupted run, and
// rejects bad input with one clear line. The tokenizer is the synthetic
// vocabulary embedded by `shrink init` (no ../shared needed).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace shrink {
namespace {

struct Fixture {
  std::string dir, base;
};

// A tokenizer (a tiny init GGUF), a config and a text of ~60 KB.
Fixture make_fixture(const std::string& name) {
  Fixture f;
  f.dir = test::temp_dir(name);
  EXPECT_EQ(test::run_shrink("init --preset tiny -o " + f.dir + "/tok.gguf").code, 0);
  std::ofstream(f.dir + "/tiny.json")
      << R"({"dim":32,"hidden_dim":64,"n_layers":2,"n_heads":4,"n_kv_heads":2,"vocab_size":512,"max_seq_len":64})";
  std::ofstream text(f.dir + "/text.txt");
  for (int i = 0; i < 3000; ++i) text << "the cat sat on the mat " << (i % 7) << "\n";
  text.close();
  f.base = "train --config " + f.dir + "/tiny.json --tokenizer " + f.dir + "/tok.gguf --data " + f.dir +
           "/text.txt --cache-dir " + f.dir + "/cache --steps 12 --batch 2 --seq-len 32 --warmup 2 --lr 3e-3 -t 1";
  return f;
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(TrainCli, WritesAGgufThatEvalAndRunLoad) {
  const Fixture f = make_fixture("train_cli");
  const auto r = test::run_shrink(f.base + " --val-every 4 --log " + f.dir + "/log.csv -o " + f.dir + "/out.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tokenized"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("validation loss"), std::string::npos) << r.out;
  const std::string log = slurp(f.dir + "/log.csv");
  EXPECT_EQ(log.rfind("step,tokens,train_loss,val_loss", 0), 0u) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1 + 12 + 4);  // header, 12 steps, validations at 0/4/8/12
  const auto e = test::run_shrink("eval " + f.dir + "/out.gguf --ppl " + f.dir + "/text.txt -c 32 --chunks 4 -t 1");
  EXPECT_EQ(e.code, 0) << e.out;
  EXPECT_NE(e.out.find("PPL"), std::string::npos) << e.out;
  const auto g = test::run_shrink("run " + f.dir + "/out.gguf -p \"the cat\" -n 4 -t 1");
  EXPECT_EQ(g.code, 0) << g.out;
  // The second run reads the token cache.
  const auto again = test::run_shrink(f.base + " --steps 1 -o " + f.dir + "/out2.gguf");
  EXPECT_NE(again.out.find("cached in"), std::string::npos) << again.out;
}

TEST(TrainCli, InitContinuesAnExistingModel) {
  const Fixture f = make_fixture("train_init");  // tok.gguf is a whole (random) tiny Llama with its tokenizer
  const auto r = test::run_shrink("train --init " + f.dir + "/tok.gguf --data " + f.dir + "/text.txt --cache-dir " +
                                  f.dir + "/cache --steps 3 --batch 2 --seq-len 32 -t 1 -o " + f.dir + "/cont.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto i = test::run_shrink("inspect " + f.dir + "/cont.gguf");
  EXPECT_EQ(i.code, 0) << i.out;
  EXPECT_EQ(test::run_shrink("run " + f.dir + "/cont.gguf -p \"the\" -n 2 -t 1").code, 0);
}

TEST(TrainCli, KilledRunResumesToTheSameBytes) {
  const Fixture f = make_fixture("train_kill");
  ASSERT_EQ(test::run_shrink(f.base + " --steps 40 -o " + f.dir + "/whole.gguf").code, 0);
  const std::string ck = f.dir + "/ck";
  // kill -9 as soon as the first checkpoint exists (checkpoints every step).
  const std::string cmd = "sh -c '" + std::string(SHRINK_BINARY) + " " + f.base + " --steps 40 --ckpt-dir " + ck +
                          " --ckpt-every 1 -o " + f.dir + "/part.gguf >/dev/null 2>&1 & pid=$!; "
                          "while [ ! -f " + ck + "/last.ckpt ]; do sleep 0.01; done; kill -9 $pid; wait $pid'";
  ASSERT_NE(std::system(cmd.c_str()), -1);
  ASSERT_TRUE(std::filesystem::exists(ck + "/last.ckpt"));
  const auto r = test::run_shrink(f.base + " --steps 40 --ckpt-dir " + ck + " --resume -o " + f.dir + "/part.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(f.dir + "/whole.gguf"), slurp(f.dir + "/part.gguf"));
  // Resuming with other hyper-parameters is refused.
  const auto bad = test::run_shrink(f.base + " --steps 40 --lr 1e-3 --ckpt-dir " + ck + " --resume -o " + f.dir +
                                    "/x.gguf");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("lr"), std::string::npos) << bad.out;
}

TEST(TrainCli, SgdTrainsAndWritesAModel) {
  const Fixture f = make_fixture("train_cli_sgd");
  const auto r = test::run_shrink(f.base + " --steps 6 --optimizer sgd --momentum 0.9 --lr 0.05 -o " + f.dir +
                                  "/sgd.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(f.dir + "/sgd.gguf"));
  const auto e = test::run_shrink("eval " + f.dir + "/sgd.gguf --ppl " + f.dir + "/text.txt -c 32 --chunks 2 -t 1");
  EXPECT_EQ(e.code, 0) << e.out;
}

TEST(TrainCli, BadInputIsAOneLineError) {
  const Fixture f = make_fixture("train_bad");
  auto expect_error = [](const test::CliResult& r, const std::string& needle) {
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("shrink: error: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
  };
  const std::string data = " --data " + f.dir + "/text.txt -o " + f.dir + "/o.gguf";
  expect_error(test::run_shrink("train --config " + f.dir + "/tiny.json" + data), "--tokenizer");
  expect_error(test::run_shrink("train --preset tiny --config " + f.dir + "/tiny.json" + data), "exactly one");
  expect_error(test::run_shrink(f.base + " --steps 0 -o " + f.dir + "/o.gguf"), "--steps");
  expect_error(test::run_shrink(f.base + " -o " + f.dir + "/o.bin"), ".gguf");
  expect_error(test::run_shrink(f.base + " --seq-len 128 -o " + f.dir + "/o.gguf"), "context");
  expect_error(test::run_shrink(f.base + " --resume -o " + f.dir + "/o.gguf"), "--ckpt-dir");
  expect_error(test::run_shrink(f.base + " --optimizer lion -o " + f.dir + "/o.gguf"), "--optimizer");
  std::ofstream(f.dir + "/empty.txt").close();
  expect_error(test::run_shrink(f.base + " --data " + f.dir + "/empty.txt -o " + f.dir + "/o.gguf"), "empty");
}

}  // namespace
}  // namespace shrink
