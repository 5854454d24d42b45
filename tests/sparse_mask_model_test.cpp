// Bitmask sparse Linears in a whole model through GGUF (model/sparse_mask_weight.h):
// prune 70% -> compress -> save -> load gives the in-memory compressed model's
// logits bit for bit (same tensors, same kernels) and the dense pruned model's
// within float rounding (the kernel sums in another order), also when the
// writer permutes q/k rows for the GGUF RoPE order; corrupt or truncated
// tensors are refused with a message; Linears below kMaskMinSparsity stay
// dense; `shrink prune --compress`, `convert --sparse mask` and `inspect` on
// stories260K (skipped without ../shared).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "compress/prune/prune.h"
#include "io/gguf.h"
#include "model/random_init.h"
#include "model/sparse_mask_weight.h"
#include "model/transformer.h"
#include "test_util.h"

namespace shrink {
namespace {

const std::vector<int32_t> kToks = {1, 70, 80, 90, 100, 3, 4, 120};

std::vector<float> logits_of(Transformer& m, bool decode) {
  KVCache c = m.new_cache(int(kToks.size()));
  const size_t V = size_t(m.config().vocab_size);
  std::vector<float> out(kToks.size() * V);
  if (!decode) m.forward(kToks.data(), int(kToks.size()), c, out.data(), true);
  else
    for (size_t i = 0; i < kToks.size(); ++i) m.forward(&kToks[i], 1, c, out.data() + i * V, false);
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << what << i;
}

Transformer pruned_model(const ModelFile& f, const char* sparsity) {
  Transformer model(f);
  prune::PruneOptions opt;
  opt.pattern = prune::SparsityPattern::parse(sparsity);
  prune::prune_model(model, {}, opt);
  return model;
}

void round_trip(RopeStyle rope) {
  ModelConfig cfg = preset_config("tiny");
  cfg.rope_style = rope;
  const ModelFile f = random_model(cfg, DType::F32, 21);
  Transformer model = pruned_model(f, "0.7");
  const std::vector<float> dense_prefill = logits_of(model, false), dense_decode = logits_of(model, true);
  ASSERT_EQ(compress_model_mask(model), 14);  // 2 blocks x 7 Linears
  const std::vector<float> mem_prefill = logits_of(model, false), mem_decode = logits_of(model, true);

  const std::string dir = test::temp_dir("mask_rt");
  ModelFile out = f;
  model.export_to(out);
  EXPECT_FALSE(out.find("blk.0.attn_q.weight"));
  ASSERT_TRUE(out.find("blk.0.attn_q.weight.mask_bits"));
  save_gguf_model(out, dir + "/m.gguf");
  EXPECT_EQ(read_gguf(dir + "/m.gguf").get("shrink.sparse.count").as_int("count"), 14);
  Transformer loaded(load_model(dir + "/m.gguf"));
  EXPECT_EQ(loaded.block(1).wq.weight().kind(), "bitmask f32");
  EXPECT_EQ(loaded.weight_bytes(), model.weight_bytes());
  const std::vector<float> got_prefill = logits_of(loaded, false), got_decode = logits_of(loaded, true);
  if (rope == RopeStyle::Interleaved) {  // nothing permuted: the same numbers in the same order
    EXPECT_EQ(got_prefill, mem_prefill);
    EXPECT_EQ(got_decode, mem_decode);
  }
  expect_close(got_prefill, dense_prefill, "loaded prefill vs dense pruned ");
  expect_close(got_decode, dense_decode, "loaded decode vs dense pruned ");
}

TEST(SparseMaskModel, PruneCompressSaveLoadGivesTheDensePrunedLogits) {
  round_trip(RopeStyle::Interleaved);
  round_trip(RopeStyle::Neox);  // the writer permutes q/k mask rows and moves their values with them
}

TEST(SparseMaskModel, LinearsBelowTheThresholdStayDense) {
  const ModelFile f = random_model(preset_config("tiny"), DType::F32, 4);
  Transformer model = pruned_model(f, "0.3");
  EXPECT_EQ(compress_model_mask(model), 0);
  EXPECT_EQ(model.block(0).wq.weight().kind(), Transformer(f).block(0).wq.weight().kind());
  EXPECT_EQ(compress_model_mask(model, 0.25), 14);
}

std::string load_error(const ModelFile& f) {
  try {
    Transformer t(f);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(SparseMaskModel, CorruptOrTruncatedTensorsAreRefused) {
  ModelFile f = random_model(preset_config("tiny"), DType::F32, 5);
  Transformer model = pruned_model(f, "0.7");
  compress_model_mask(model);
  model.export_to(f);
  ASSERT_NO_THROW(check_model_tensors(f));
  ASSERT_EQ(load_error(f), "");
  const std::string bits = "blk.0.ffn_down.weight.mask_bits", vals = "blk.0.ffn_down.weight.mask_val",
                    meta = "blk.0.ffn_down.weight.mask_meta";

  ModelFile shortv = f;  // one value missing
  Tensor v = shortv.tensors[vals];
  v.shape = {v.numel() - 1};
  shortv.tensors[vals] = v;
  EXPECT_NE(load_error(shortv).find("truncated or corrupt"), std::string::npos) << load_error(shortv);

  ModelFile flipped = f;  // one more mask bit than there are values
  Tensor b = flipped.tensors[bits].clone();
  uint16_t* mk = b.ptr<uint16_t>();
  for (int64_t i = 0;; ++i)
    if (mk[i] != 0xFFFF) {
      mk[i] |= uint16_t(mk[i] + 1);  // sets the lowest clear bit
      break;
    }
  flipped.tensors[bits] = b;
  EXPECT_NE(load_error(flipped).find("truncated or corrupt"), std::string::npos) << load_error(flipped);

  ModelFile wide = f;  // a bit past in_features in a narrow last group
  const int64_t cols = wide.get(meta).ptr<const int32_t>()[0];
  ASSERT_NE(cols % 16, 0) << "the tiny preset's ffn_down should not be a multiple of 16 wide";
  Tensor b2 = wide.tensors[bits].clone();
  b2.ptr<uint16_t>()[b2.dim(1) - 1] |= uint16_t(0x8000);
  wide.tensors[bits] = b2;
  EXPECT_NE(load_error(wide).find("past in_features"), std::string::npos) << load_error(wide);

  ModelFile badmeta = f;  // in_features that disagrees with the config
  Tensor m2 = badmeta.tensors[meta].clone();
  m2.ptr<int32_t>()[0] += 16;
  badmeta.tensors[meta] = m2;
  EXPECT_THROW(check_model_tensors(badmeta), Error);

  ModelFile wrongtype = f;  // values not f32
  wrongtype.tensors[vals] = wrongtype.tensors[vals].to(DType::BF16);
  EXPECT_NE(load_error(wrongtype).find("F32"), std::string::npos) << load_error(wrongtype);
}

int run(const std::string& args) { return test::run_shrink(args).code; }

TEST(SparseMaskModel, PruneCompressConvertAndInspectOnStories) {
  SHRINK_REQUIRE_ASSET(model, "models/stories260K/stories260K.bin");
  const std::string dir = test::temp_dir("mask_cli"), bin = "-t 1";
  ASSERT_EQ(run("prune " + model + " " + bin + " --sparsity 0.7 -o " + dir + "/dense.gguf"), 0);
  ASSERT_EQ(run("prune " + model + " " + bin + " --sparsity 0.7 --compress -o " + dir + "/c.gguf"), 0);
  ASSERT_EQ(run("convert " + dir + "/dense.gguf --sparse mask -o " + dir + "/conv.gguf"), 0);
  Transformer dense(load_model(dir + "/dense.gguf")), c(load_model(dir + "/c.gguf")), conv(load_model(dir + "/conv.gguf"));
  EXPECT_EQ(c.block(0).w_up.weight().kind(), "bitmask f32");
  EXPECT_EQ(conv.block(0).w_up.weight().kind(), "bitmask f32");
  const auto want = logits_of(dense, false);
  expect_close(logits_of(c, false), want, "prune --compress ");
  expect_close(logits_of(conv, false), want, "convert --sparse mask ");
  EXPECT_LT(std::filesystem::file_size(dir + "/c.gguf"), std::filesystem::file_size(dir + "/dense.gguf") / 2);
  const test::CliResult ins = test::run_shrink("inspect " + dir + "/c.gguf");
  EXPECT_NE(ins.out.find("linears bitmask f32"), std::string::npos) << ins.out;
  // Bad input: an unpruned model has nothing to compress; a directory cannot hold the format.
  EXPECT_NE(run("convert " + model + " --sparse mask -o " + dir + "/y.gguf"), 0);
  EXPECT_NE(run("convert " + dir + "/dense.gguf --sparse mask -o " + dir + "/hf"), 0);
  EXPECT_NE(run("prune " + model + " " + bin + " --sparsity 0.7 --compress -o " + dir + "/hf2"), 0);
}

}  // namespace
}  // namespace shrink
