// Whole-model weight quantization: GGUF files of every block type give the
// logits of their dequantized weights run in f32 (up to the kernels'
// activation rounding), and the quantize command runs end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "compress/quant/quantize.h"
#include "model/random_init.h"
#include "test_util.h"

using namespace shrink;

namespace {

std::vector<float> logits_of(const ModelFile& f, const std::vector<int32_t>& toks) {
  Transformer m(f);
  return test::all_logits(m, toks);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, double* scale) {
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i]))), s = std::max(s, double(std::fabs(b[i])));
  *scale = s;
  return d;
}

}  // namespace

TEST(QuantizedGguf, EveryBlockTypeRunsLikeItsDequantizedWeights) {
  ModelConfig c = preset_config("tiny");
  c.dim = 256, c.hidden_dim = 512, c.n_heads = 4, c.n_kv_heads = 2;
  c.validate("test");
  const ModelFile orig = random_model(c, DType::F32, 3);
  const std::vector<int32_t> toks = {1, 17, 300, 42, 99, 7, 256, 511, 3, 64, 128, 5};
  const std::vector<float> ref = logits_of(orig, toks);
  const std::string dir = test::temp_dir("quantized_gguf");
  for (DType t : {DType::Q8_0, DType::Q6_K, DType::Q5_K, DType::Q5_1, DType::Q5_0, DType::Q4_K, DType::Q4_1,
                  DType::Q4_0, DType::Q3_K, DType::Q2_K, DType::IQ4_NL}) {
    ModelFile f = orig;
    Transformer model(f);
    quant::QuantizeOptions opt;
    opt.target = opt.head = quant::QuantTarget::of_block(t);
    quant::quantize_model(model, {}, opt);
    model.export_to(f);
    const std::string path = dir + "/" + std::string(dtype_name(t)) + ".gguf";
    save_gguf_model(f, path);
    const ModelFile q = load_model(path);
    EXPECT_EQ(q.get("blk.0.ffn_down.weight").dtype, t);
    EXPECT_EQ(q.get("output.weight").dtype, t);
    ModelFile deq = q;  // the same weights widened to f32: run by the dense kernels
    for (auto& [name, tensor] : deq.tensors)
      if (is_block_quantized(tensor.dtype)) tensor = tensor.to(DType::F32);
    const std::vector<float> lq = logits_of(q, toks), ld = logits_of(deq, toks);
    double scale = 0;
    const double kernel_err = max_abs_diff(lq, ld, &scale);
    const double quant_err = max_abs_diff(ld, ref, &scale);
    // Q8 activations cost ~0.5% of the logit range; the weight quantization itself costs more.
    EXPECT_LT(kernel_err, 0.02 * scale) << dtype_name(t);
    if (t != DType::Q8_0) {
      EXPECT_LT(kernel_err, quant_err) << dtype_name(t);
    }
  }
}

TEST(QuantizeCli, GptqOnStories260KWritesGgufAndReport) {
  SHRINK_REQUIRE_ASSET(model, "models/stories260K/stories260K.bin");
  SHRINK_REQUIRE_ASSET(text, "text/wikitext-2-raw/wiki.test.raw");
  const std::string dir = test::temp_dir("quantize_cli");
  const std::string out = dir + "/s-gptq.gguf";
  const std::string cmd = std::string(SHRINK_BINARY) + " quantize " + model + " --method gptq --type q4_0 --calib " +
                          text + " --calib-tokens 4096 --seq-len 256 -o " + out + " --ppl " + text +
                          " --ctx 256 --chunks 4 > " + dir + "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const ModelFile q = load_model(out);
  EXPECT_EQ(q.get("blk.0.attn_q.weight").dtype, DType::Q4_0);
  EXPECT_EQ(q.get("blk.0.ffn_down.weight").dtype, DType::F16);  // rows of 172 fit no block type
  std::ifstream rf(out + ".json");
  const nlohmann::json j = nlohmann::json::parse(rf);
  EXPECT_EQ(j["method"], "gptq");
  // 5 blocks x 7 linears and the token embedding (tied to the head: the head's
  // Q6_K, which 64-wide rows cannot hold, so Q8_0 as llama-quantize falls back).
  EXPECT_EQ(j["layers"].size(), 5u * 7u + 1u);
  EXPECT_EQ(q.get("token_embd.weight").dtype, DType::Q8_0);
  EXPECT_GT(j["evals"][0]["ppl"].get<double>(), 0);
  EXPECT_LT(j["evals"][0]["kld"].get<double>(), 0.5);
}

// A recipe given as --type, and a name that is no type at all, say what to give instead.
TEST(QuantizeCli, TypeErrorsNameTheRightOption) {
  const std::string dir = test::temp_dir("quantize_type_errors");
  ASSERT_EQ(test::run_shrink("init --preset tiny -o " + dir + "/t.gguf").code, 0);
  const test::CliResult recipe = test::run_shrink("quantize " + dir + "/t.gguf --type Q4_K_M -o " + dir + "/q.gguf");
  EXPECT_NE(recipe.code, 0);
  EXPECT_NE(recipe.out.find("use --preset Q4_K_M"), std::string::npos) << recipe.out;
  const test::CliResult unknown = test::run_shrink("quantize " + dir + "/t.gguf --type q4_x -o " + dir + "/q.gguf");
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE(unknown.out.find("a ggml block type"), std::string::npos) << unknown.out;
  const test::CliResult group = test::run_shrink("quantize " + dir + "/t.gguf --type int9g128 -o " + dir + "/q.gguf");
  EXPECT_NE(group.out.find("2..8 bits"), std::string::npos) << group.out;
}
