// The shrink binary on bad input: a one-line error naming the file and the
// problem, a non-zero exit, never a crash. Also `init` + `eval`/`bench` on a
// random model, which needs no ../shared.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace shrink {
namespace {

using Result = test::CliResult;
Result run(const std::string& args) { return test::run_shrink(args); }

using test::write_bytes;

// A one-line "shrink: error: ..." that names `needle`, with exit code 1.
void expect_clean_error(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.rfind("shrink: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
}

TEST(Cli, MissingFile) { expect_clean_error(run("inspect /nonexistent/model.bin"), "/nonexistent/model.bin"); }

TEST(Cli, TruncatedLlama2cAtManyPoints) {
  SHRINK_REQUIRE_ASSET(src, "models/stories260K/stories260K.bin");
  const std::string dir = test::temp_dir("cli_trunc");
  std::ifstream in(src, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  for (size_t cut : {size_t(0), size_t(3), size_t(27), size_t(28), size_t(1000), bytes.size() / 2, bytes.size() - 4}) {
    const std::string p = dir + "/m" + std::to_string(cut) + ".bin";
    write_bytes(p, bytes.substr(0, cut));
    expect_clean_error(run("inspect " + p), p);
  }
}

TEST(Cli, GarbageHeaderIsRejected) {
  const std::string dir = test::temp_dir("cli_garbage");
  std::string h(28, '\0');
  const int32_t vals[7] = {64, 172, 5, 8, 3, 512, 512};  // 8 heads not a multiple of 3 KV heads
  std::memcpy(h.data(), vals, 28);
  write_bytes(dir + "/a.bin", h + std::string(4096, '\0'));
  expect_clean_error(run("inspect " + dir + "/a.bin"), "KV heads");
  const int32_t huge[7] = {1 << 30, 1 << 30, 1 << 20, 8, 8, 512, 512};
  std::memcpy(h.data(), huge, 28);
  write_bytes(dir + "/b.bin", h);
  expect_clean_error(run("inspect " + dir + "/b.bin"), dir + "/b.bin");
}

TEST(Cli, NanWeightsAreRejected) {
  SHRINK_REQUIRE_ASSET(src, "models/stories260K/stories260K.bin");
  const std::string dir = test::temp_dir("cli_nan");
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const float nan = std::nanf("");
  std::memcpy(bytes.data() + 28 + 4 * 100, &nan, 4);
  write_bytes(dir + "/stories260K.bin", bytes);
  expect_clean_error(run("inspect " + dir + "/stories260K.bin"), "NaN");
}

TEST(Cli, MissingTokenizerIsExplained) {
  SHRINK_REQUIRE_ASSET(src, "models/stories260K/stories260K.bin");
  const std::string dir = test::temp_dir("cli_notok");
  std::filesystem::copy_file(src, dir + "/m.bin");
  expect_clean_error(run("run " + dir + "/m.bin -n 2"), "--tokenizer");
  const Result ok = run("run " + dir + "/m.bin -n 2 --no-stats --tokenizer " +
                        test::asset("models/stories260K/tok512.bin"));
  EXPECT_EQ(ok.code, 0) << ok.out;
}

TEST(Cli, InitEvalBenchOnRandomModel) {
  const std::string dir = test::temp_dir("cli_init");
  const Result init = run("init --preset tiny -o " + dir + "/tiny.gguf");
  ASSERT_EQ(init.code, 0) << init.out;
  const Result eval = run("eval " + dir + "/tiny.gguf --ppl " + std::string(SHRINK_SOURCE_DIR) + "/data/demo.txt --ctx 64");
  EXPECT_EQ(eval.code, 0) << eval.out;
  EXPECT_NE(eval.out.find("PPL = "), std::string::npos) << eval.out;
  // An f32 model scores the same however the window is split into forward calls.
  const Result ub = run("eval " + dir + "/tiny.gguf --ppl " + std::string(SHRINK_SOURCE_DIR) + "/data/demo.txt --ctx 64 --ubatch 5");
  ASSERT_EQ(ub.code, 0) << ub.out;
  EXPECT_NEAR(std::stod(ub.out.substr(ub.out.find("PPL = ") + 6)), std::stod(eval.out.substr(eval.out.find("PPL = ") + 6)),
              1e-3) << ub.out << eval.out;
  const Result bench = run("bench " + dir + "/tiny.gguf -p 8 -n 4 -r 1 -t 1 --no-bandwidth");
  EXPECT_EQ(bench.code, 0) << bench.out;
  EXPECT_NE(bench.out.find("tok/s"), std::string::npos) << bench.out;
}

// The number printed after `key` (up to the next space).
std::string figure_after(const std::string& out, const std::string& key) {
  const size_t at = out.find(key);
  if (at == std::string::npos) return "(no " + key + ")";
  const size_t from = at + key.size();
  return out.substr(from, out.find_first_of(" ;\n", from) - from);
}

// quantize --method w8a8 -o DIR, then eval DIR: the saved model scores what the in-memory one did.
TEST(Cli, W8A8SavedModelEvaluatesAsMeasuredInPlace) {
  const std::string dir = test::temp_dir("cli_w8a8");
  const std::string text = std::string(SHRINK_SOURCE_DIR) + "/data/demo.txt";
  ASSERT_EQ(run("init --preset tiny -o " + dir + "/tiny.gguf").code, 0);
  const Result q = run("quantize " + dir + "/tiny.gguf --method w8a8 --observer percentile --calib " + text +
                       " --calib-tokens 512 --seq-len 64 --ppl " + text + " --ctx 64 -o " + dir + "/w8a8");
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_NE(q.out.find("wrote " + dir + "/w8a8"), std::string::npos) << q.out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/w8a8/shrink_quantize_report.json"));
  // The GGUF's tokenizer is inside it, not a file beside it: name it.
  const Result e = run("eval " + dir + "/w8a8 --tokenizer " + dir + "/tiny.gguf --base " + dir + "/tiny.gguf --ppl " +
                       text + " --ctx 64");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_EQ(figure_after(q.out, "PPL = "), figure_after(e.out, "PPL = ")) << q.out << e.out;
  EXPECT_EQ(figure_after(q.out, "KLD = "), figure_after(e.out, "KLD(base||model) = ")) << q.out << e.out;
  const Result r = run("run " + dir + "/w8a8 --tokenizer " + dir + "/tiny.gguf -p hello -n 4 --no-stats");
  EXPECT_EQ(r.code, 0) << r.out;
  const Result i = run("inspect " + dir + "/w8a8");
  EXPECT_EQ(i.code, 0) << i.out;
  expect_clean_error(run("quantize " + dir + "/tiny.gguf --method dynamic -o " + dir + "/x.gguf"), "no GGUF form");
  std::filesystem::remove_all(dir);
}

TEST(Cli, HelpExplainsCommands) {
  const Result r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* c : {"inspect", "run", "eval", "bench", "init"}) EXPECT_NE(r.out.find(c), std::string::npos) << c;
}

}  // namespace
}  // namespace shrink
