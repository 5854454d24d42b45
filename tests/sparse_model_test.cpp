// Compressed N:M Linears in a whole model (model/sparse_weight.h): prune ->
// compress -> save GGUF -> load gives the dense pruned model's logits (within
// float rounding), also when the GGUF architecture's RoPE order makes the
// writer permute q/k rows; `shrink prune --compress` and `shrink convert
// --sparse` on stories260K (skipped without ../shared).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "compress/prune/prune.h"
#include "io/gguf.h"
#include "model/random_init.h"
#include "model/sparse_weight.h"
#include "model/transformer.h"
#include "test_util.h"

namespace shrink {
namespace {

std::vector<float> logits_of(Transformer& m, const std::vector<int32_t>& toks) {
  KVCache c = m.new_cache(int(toks.size()));
  std::vector<float> out(toks.size() * size_t(m.config().vocab_size));
  m.forward(toks.data(), int(toks.size()), c, out.data(), true);
  return out;
}

// Decode one token at a time (the GEMV path) instead of a prefill.
std::vector<float> decode_logits(Transformer& m, const std::vector<int32_t>& toks) {
  KVCache c = m.new_cache(int(toks.size()));
  const size_t V = size_t(m.config().vocab_size);
  std::vector<float> out(toks.size() * V);
  for (size_t i = 0; i < toks.size(); ++i) m.forward(&toks[i], 1, c, out.data() + i * V, false);
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << what << i;
}

void round_trip(RopeStyle rope, DType dtype, const std::string& pattern) {
  ModelConfig cfg = preset_config("tiny");
  cfg.rope_style = rope;
  const ModelFile f = random_model(cfg, dtype, 9);
  Transformer model(f);
  prune::PruneOptions opt;
  opt.pattern = prune::SparsityPattern::parse(pattern);
  prune::prune_model(model, {}, opt);
  const std::vector<int32_t> toks = {1, 70, 80, 90, 100, 3, 4, 120};
  const std::vector<float> want = logits_of(model, toks), want_decode = decode_logits(model, toks);
  const int64_t dense_bytes = model.weight_bytes();

  EXPECT_EQ(compress_model_nm(model, opt.pattern.n, opt.pattern.m), 14);  // 2 blocks x 7 Linears
  EXPECT_EQ(model.block(0).wq.weight().kind(), pattern + (dtype == DType::BF16 ? " bf16" : " f32"));
  EXPECT_LT(model.weight_bytes(), dense_bytes);
  expect_close(logits_of(model, toks), want, "compressed prefill ");
  expect_close(decode_logits(model, toks), want_decode, "compressed decode ");

  const std::string dir = test::temp_dir("sparse_rt");
  ModelFile out = f;
  model.export_to(out);
  EXPECT_FALSE(out.find("blk.0.attn_q.weight"));
  ASSERT_TRUE(out.find("blk.0.attn_q.weight.nm_val"));
  save_gguf_model(out, dir + "/sp.gguf");
  EXPECT_EQ(read_gguf(dir + "/sp.gguf").get("shrink.sparse.count").as_int("count"), 14);
  Transformer loaded(load_model(dir + "/sp.gguf"));
  EXPECT_EQ(loaded.block(1).w_down.weight().kind(), model.block(1).w_down.weight().kind());
  EXPECT_EQ(loaded.weight_bytes(), model.weight_bytes());
  expect_close(logits_of(loaded, toks), want, "loaded prefill ");
  expect_close(decode_logits(loaded, toks), want_decode, "loaded decode ");
}

TEST(SparseModel, PruneCompressSaveLoadGivesTheDensePrunedLogits) {
  round_trip(RopeStyle::Interleaved, DType::F32, "2:4");
  round_trip(RopeStyle::Neox, DType::F32, "2:4");  // the writer permutes q/k rows of values and indices
  round_trip(RopeStyle::Interleaved, DType::BF16, "4:8");
}

TEST(SparseModel, CompressingAnUnprunedModelFailsClearly) {
  Transformer model(random_model(preset_config("tiny"), DType::F32, 9));
  try {
    compress_model_nm(model, 2, 4);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("not 2:4 sparse"), std::string::npos) << e.what();
  }
}

TEST(SparseModel, MalformedTensorsAreRejected) {
  ModelFile f = random_model(preset_config("tiny"), DType::F32, 5);
  Transformer model(f);
  prune::PruneOptions opt;
  opt.pattern = prune::SparsityPattern::parse("2:4");
  prune::prune_model(model, {}, opt);
  compress_model_nm(model, 2, 4);
  model.export_to(f);
  EXPECT_NO_THROW(check_model_tensors(f));
  f.tensors["blk.0.attn_q.weight.nm_meta"].ptr<int32_t>()[2] = 60;  // wrong in_features
  EXPECT_THROW(check_model_tensors(f), Error);
}

int run(const std::string& args) { return test::run_shrink(args).code; }

TEST(SparseModel, PruneCompressAndConvertSparseOnStories) {
  SHRINK_REQUIRE_ASSET(model, "models/stories260K/stories260K.bin");
  const std::string dir = test::temp_dir("sparse_cli"), bin = "-t 1";  // one thread: a tiny model on a loaded host
  ASSERT_EQ(run("prune " + model + " " + bin + " --sparsity 2:4 -o " + dir + "/dense.gguf"), 0);
  ASSERT_EQ(run("prune " + model + " " + bin + " --sparsity 2:4 --compress -o " + dir + "/c.gguf"), 0);
  ASSERT_EQ(run("convert " + dir + "/dense.gguf --sparse 2:4 -o " + dir + "/conv.gguf"), 0);
  Transformer dense(load_model(dir + "/dense.gguf")), c(load_model(dir + "/c.gguf")), conv(load_model(dir + "/conv.gguf"));
  EXPECT_EQ(c.block(0).w_up.weight().kind(), "2:4 f32");
  const std::vector<int32_t> toks = {1, 70, 80, 90, 100, 3, 4, 120};
  const auto want = logits_of(dense, toks);
  expect_close(logits_of(c, toks), want, "prune --compress ");
  expect_close(logits_of(conv, toks), want, "convert --sparse ");
  // Bad input: --compress to a directory, --sparse on an unpruned model, --sparse to a directory.
  // (--compress with an unstructured --sparsity writes the bitmask format: sparse_mask_model_test.cpp.)
  EXPECT_NE(run("prune " + model + " " + bin + " --sparsity 2:4 --compress -o " + dir + "/x"), 0);
  EXPECT_NE(run("convert " + model + " --sparse 2:4 -o " + dir + "/y.gguf"), 0);
  EXPECT_NE(run("convert " + dir + "/dense.gguf --sparse 2:4 -o " + dir + "/hf"), 0);
}

}  // namespace
}  // namespace shrink
