// llama-quantize recipes: --preset gives the same type, tensor by tensor, as
// llama.cpp's llama_tensor_get_type, and with RTN the same bytes.
#include <gtest/gtest.h>

#include <cstring>

#include "compress/quant/presets.h"
#include "core/error.h"
#include "model/random_init.h"
#include "test_util.h"

using namespace shrink;

namespace {

// Types a preset gives a random Llama model of n_layers layers, by Linear name.
std::map<std::string, std::string> preset_types(const std::string& preset, int n_layers, const std::string& method) {
  ModelConfig c = preset_config("tiny");
  c.dim = 256, c.hidden_dim = 256, c.n_heads = 4, c.n_kv_heads = 4, c.head_dim = 0, c.n_layers = n_layers;
  c.vocab_size = 256;
  c.validate("test");
  Transformer m(random_model(c, DType::F32, 1));
  quant::QuantizeOptions opt;
  opt.method = method;
  quant::apply_preset(preset, m, opt);
  std::map<std::string, std::string> out;
  for (Linear* l : m.linears()) out[l->name()] = quant::layer_target(opt, *l, l == &m.output()).name();
  out["token_embd"] = opt.embed.name();
  return out;
}

}  // namespace

TEST(Presets, Q4KMGivesMoreBitsToAttnVAndFfnDownInUseMoreBitsLayers) {
  // use_more_bits(i, 8): i < 1, i >= 7, (i - 1) % 3 == 2  ->  layers 0, 3, 6, 7.
  const auto t = preset_types("q4_k_m", 8, "rtn");
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 0 || i == 3 || i == 6 || i == 7;
    const std::string p = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(t.at(p + "attn_v"), more ? "q6_k" : "q4_k") << i;
    EXPECT_EQ(t.at(p + "ffn_down"), more ? "q6_k" : "q4_k") << i;
    EXPECT_EQ(t.at(p + "attn_q"), "q4_k");
    EXPECT_EQ(t.at(p + "attn_output"), "q4_k");
    EXPECT_EQ(t.at(p + "ffn_up"), "q4_k");
  }
  EXPECT_EQ(t.at("output"), "q6_k");
  EXPECT_EQ(t.at("token_embd"), "q4_k");
}

TEST(Presets, Q3KMAndQ2KFollowLlamaQuantize) {
  const auto q3 = preset_types("Q3_K_M", 16, "rtn");
  EXPECT_EQ(q3.at("blk.0.attn_v"), "q5_k");
  EXPECT_EQ(q3.at("blk.1.attn_v"), "q5_k");
  EXPECT_EQ(q3.at("blk.2.attn_v"), "q4_k");
  EXPECT_EQ(q3.at("blk.0.ffn_down"), "q5_k");  // i < n/16 = 1
  EXPECT_EQ(q3.at("blk.1.ffn_down"), "q4_k");
  EXPECT_EQ(q3.at("blk.5.attn_output"), "q4_k");
  EXPECT_EQ(q3.at("blk.5.ffn_gate"), "q3_k");
  const auto q2 = preset_types("Q2_K", 4, "rtn");
  EXPECT_EQ(q2.at("blk.0.attn_v"), "q3_k");  // n_gqa = 1 < 4
  EXPECT_EQ(q2.at("blk.0.ffn_down"), "q3_k");
  EXPECT_EQ(q2.at("blk.0.attn_output"), "q3_k");
  EXPECT_EQ(q2.at("blk.0.attn_q"), "q2_k");
  // Q4_0's first ffn_down layers move to Q4_1 only with an importance matrix.
  EXPECT_EQ(preset_types("Q4_0", 16, "rtn").at("blk.1.ffn_down"), "q4_0");
  EXPECT_EQ(preset_types("Q4_0", 16, "imatrix").at("blk.1.ffn_down"), "q4_1");
  EXPECT_EQ(preset_types("Q4_0", 16, "imatrix").at("blk.2.ffn_down"), "q4_0");
  EXPECT_EQ(preset_types("Q8_0", 2, "rtn").at("output"), "q8_0");
}

TEST(Presets, UnknownNameIsAnError) {
  EXPECT_FALSE(quant::is_preset("q4_k_x"));
  EXPECT_THROW(preset_types("q4_k_x", 2, "rtn"), Error);
}

// RTN with --preset Q4_K_M writes every tensor of llama-quantize's Q4_K_M file
// of teacher-9M with the same type and the same bytes.
TEST(Presets, Q4KMOfTeacherEqualsLlamaQuantizeFileByteForByte) {
  SHRINK_REQUIRE_ASSET(f32, "models/teacher-9M/gguf/model-f32.gguf");
  SHRINK_REQUIRE_ASSET(ref, "models/teacher-9M/gguf/model-q4_k_m.gguf");
  ModelFile f = load_model(f32);
  Transformer m(f);
  quant::QuantizeOptions opt;
  quant::apply_preset("Q4_K_M", m, opt);
  quant::quantize_model(m, {}, opt);
  ModelFile out = f;
  m.export_to(out);
  const ModelFile r = load_model(ref);
  int compared = 0;
  for (const auto& [name, t] : r.tensors) {
    if (!is_block_quantized(t.dtype)) continue;
    const Tensor* o = out.find(name);
    ASSERT_NE(o, nullptr) << name;
    ASSERT_EQ(dtype_name(o->dtype), dtype_name(t.dtype)) << name;
    ASSERT_EQ(o->nbytes(), t.nbytes()) << name;
    EXPECT_EQ(std::memcmp(o->data, t.data, static_cast<size_t>(t.nbytes())), 0) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 8 * 7 + 2);  // 7 linears per layer, the head and the token embedding
}
