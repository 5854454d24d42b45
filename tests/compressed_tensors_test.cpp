// Group-quantized models saved as compressed-tensors pack-quantized HF
// directories and loaded back: same codes and scales, bit-identical logits;
// the file follows compressed-tensors' conventions (decoded here by hand the
// way its unpack_from_int32 + dequantize do); bad files are refused clearly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compress/quant/quantize.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "model/group_weight.h"
#include "model/random_init.h"
#include "test_util.h"

using namespace shrink;
using json = nlohmann::json;

namespace {

ModelConfig tiny_config() {
  ModelConfig c = preset_config("tiny");
  c.dim = 128, c.hidden_dim = 172, c.n_heads = 4, c.n_kv_heads = 2;  // ffn_down rows of 172: ragged groups, words
  c.validate("test");
  return c;
}

// A tiny random llama whose linears are RTN-quantized to `target` (head: `head`, "" = left dense).
struct Quantized {
  ModelFile orig;
  std::unique_ptr<Transformer> model;
};
Quantized quantized_model(const std::string& target, const std::string& head, uint64_t seed = 3) {
  Quantized q;
  q.orig = random_model(tiny_config(), DType::F32, seed);
  q.model = std::make_unique<Transformer>(q.orig);
  quant::QuantizeOptions opt;
  opt.target = quant::QuantTarget::parse(target);
  opt.quantize_head = !head.empty();
  if (!head.empty()) opt.head = quant::QuantTarget::parse(head);
  quant::quantize_model(*q.model, {}, opt);
  return q;
}

std::vector<float> logits_of(Transformer& m) {
  const std::vector<int32_t> toks = {1, 17, 300, 42, 99, 7, 256, 511, 3};
  KVCache cache = m.new_cache(static_cast<int>(toks.size()));
  std::vector<float> out(toks.size() * size_t(m.config().vocab_size));
  m.forward(toks.data(), static_cast<int>(toks.size()), cache, out.data(), true);
  return out;
}

void expect_same_weights(Transformer& a, Transformer& b) {
  const auto la = a.linears(), lb = b.linears();
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    const auto* ga = dynamic_cast<const GroupQuantWeight*>(&la[i]->weight());
    const auto* gb = dynamic_cast<const GroupQuantWeight*>(&lb[i]->weight());
    ASSERT_EQ(ga == nullptr, gb == nullptr) << la[i]->name();
    if (!ga) continue;
    EXPECT_EQ(ga->spec().name(), gb->spec().name()) << la[i]->name();
    const int64_t words = ga->out_features() * ga->words_per_row();
    ASSERT_EQ(words, gb->out_features() * gb->words_per_row()) << la[i]->name();
    EXPECT_TRUE(std::equal(ga->packed(), ga->packed() + words, gb->packed())) << la[i]->name();
    EXPECT_EQ(ga->scales(), gb->scales()) << la[i]->name();
    EXPECT_EQ(ga->zeros(), gb->zeros()) << la[i]->name();
  }
}

// Saves, loads, and checks codes, scales and logits are unchanged.
void round_trip(const std::string& target, const std::string& head, const std::string& name) {
  Quantized q = quantized_model(target, head);
  const std::vector<float> before = logits_of(*q.model);
  const std::string dir = test::temp_dir("ct_" + name);
  save_quantized_hf(*q.model, q.orig, dir, DType::F32);
  const ModelFile loaded = load_model(dir);
  EXPECT_FALSE(loaded.packed.empty());
  Transformer back(loaded);
  expect_same_weights(*q.model, back);
  const std::vector<float> after = logits_of(back);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) ASSERT_EQ(before[i], after[i]) << name << " logit " << i;
  std::filesystem::remove_all(dir);
}

json read_config(const std::string& dir) { return json::parse(read_text_file(dir + "/config.json")); }

void edit_tensors(const std::string& dir, const std::function<void(std::map<std::string, Tensor>&)>& edit) {
  test::edit_safetensors(dir + "/model.safetensors", edit);
}

}  // namespace

TEST(CompressedTensors, Int4g128AsymRoundTripsBitExact) { round_trip("int4g128", "", "int4g128"); }
TEST(CompressedTensors, Int8PerChannelSymRoundTripsBitExact) { round_trip("int8chsym", "int8chsym", "int8ch"); }
TEST(CompressedTensors, Int3g64RoundTripsBitExact) { round_trip("int3g64", "", "int3g64"); }  // 10 codes per int32
TEST(CompressedTensors, PerTensorAndMixedSchemesRoundTrip) { round_trip("int4t", "int8g32sym", "mixed"); }

// The file holds what compressed-tensors writes: decoded here as its
// unpack_from_int32 (codes and zero points packed along rows, offset by
// 2^(b-1)) and dequantize (scale * (q - zp), signed) would, on a layer HF does
// not permute, it gives the weights the model runs.
TEST(CompressedTensors, FileFollowsPackQuantizedConventions) {
  Quantized q = quantized_model("int4g128", "");
  const std::string dir = test::temp_dir("ct_layout");
  save_quantized_hf(*q.model, q.orig, dir, DType::F16);
  const json qc = read_config(dir).at("quantization_config");
  EXPECT_EQ(qc.at("quant_method"), "compressed-tensors");
  EXPECT_EQ(qc.at("format"), "pack-quantized");
  const json& w = qc.at("config_groups").at("group_0").at("weights");
  EXPECT_EQ(w.at("num_bits"), 4);
  EXPECT_EQ(w.at("strategy"), "group");
  EXPECT_EQ(w.at("group_size"), 128);
  EXPECT_EQ(w.at("symmetric"), false);
  EXPECT_EQ(w.at("type"), "int");
  EXPECT_EQ(qc.at("config_groups").at("group_0").at("targets"), json::array({"Linear"}));
  EXPECT_EQ(qc.at("ignore"), json::array({"lm_head"}));

  const SafetensorsData st = read_safetensors(dir + "/model.safetensors");
  const std::string p = "model.layers.1.mlp.down_proj.";  // 128 x 172: two groups, the second ragged
  const Tensor& packed = st.tensors.at(p + "weight_packed");
  const Tensor& scale = st.tensors.at(p + "weight_scale");
  const Tensor& zp = st.tensors.at(p + "weight_zero_point");
  const Tensor& shape = st.tensors.at(p + "weight_shape");
  EXPECT_FALSE(st.tensors.count(p + "weight"));
  EXPECT_EQ(packed.dtype, DType::I32);
  EXPECT_EQ(packed.shape, (std::vector<int64_t>{128, 22}));  // ceil(172 / 8)
  EXPECT_EQ(scale.shape, (std::vector<int64_t>{128, 2}));
  EXPECT_TRUE(scale.dtype == DType::F16 || scale.dtype == DType::F32);
  EXPECT_EQ(zp.dtype, DType::I32);
  EXPECT_EQ(zp.shape, (std::vector<int64_t>{16, 2}));  // 128 rows, 8 per int32
  EXPECT_EQ(shape.dtype, DType::I64);
  EXPECT_EQ(shape.ptr<int64_t>()[0], 128);
  EXPECT_EQ(shape.ptr<int64_t>()[1], 172);
  EXPECT_EQ(st.tensors.at("model.embed_tokens.weight").dtype, DType::F16);

  const Tensor s32 = scale.to(DType::F32);
  const Tensor dense = q.model->block(1).w_down.weight().to_dense_f32();
  for (int64_t r = 0; r < 128; ++r)
    for (int64_t c = 0; c < 172; ++c) {
      const int32_t word = packed.ptr<int32_t>()[r * 22 + c / 8];
      const int q_signed = int((uint32_t(word) >> (4 * (c % 8))) & 15) - 8;
      const int64_t g = c / 128;
      const int zp_signed = int((uint32_t(zp.ptr<int32_t>()[(r / 8) * 2 + g]) >> (4 * (r % 8))) & 15) - 8;
      const float value = s32.f32()[r * 2 + g] * float(q_signed - zp_signed);
      ASSERT_NEAR(value, dense.f32()[r * 172 + c], 1e-3f * std::fabs(s32.f32()[r * 2 + g])) << r << "," << c;
    }
  std::filesystem::remove_all(dir);
}

TEST(CompressedTensors, Int3PacksTenCodesPerWord) {
  Quantized q = quantized_model("int3g64", "");
  const std::string dir = test::temp_dir("ct_int3");
  save_quantized_hf(*q.model, q.orig, dir, DType::F32);
  const SafetensorsData st = read_safetensors(dir + "/model.safetensors");
  EXPECT_EQ(st.tensors.at("model.layers.0.mlp.down_proj.weight_packed").shape, (std::vector<int64_t>{128, 18}));
  EXPECT_EQ(st.tensors.at("model.layers.0.mlp.down_proj.weight_zero_point").shape, (std::vector<int64_t>{13, 3}));
  EXPECT_EQ(st.tensors.at("model.layers.0.mlp.gate_proj.weight_scale").shape, (std::vector<int64_t>{172, 2}));
  std::filesystem::remove_all(dir);
}

TEST(CompressedTensors, SeveralSchemesNameTheirModules) {
  Quantized q = quantized_model("int4g64", "int8chsym");
  const std::string dir = test::temp_dir("ct_groups");
  save_quantized_hf(*q.model, q.orig, dir, DType::F32);
  const json qc = read_config(dir).at("quantization_config");
  ASSERT_EQ(qc.at("config_groups").size(), 2u);
  bool head_found = false;
  for (const auto& [_, g] : qc.at("config_groups").items())
    for (const auto& t : g.at("targets")) head_found = head_found || t == "lm_head";
  EXPECT_TRUE(head_found);
  EXPECT_EQ(qc.at("ignore"), json::array());
  std::filesystem::remove_all(dir);
}

TEST(CompressedTensors, RefusesWhatPackQuantizedCannotHold) {
  Quantized nf4 = quantized_model("nf4g64", "");
  const std::string dir = test::temp_dir("ct_refuse");
  EXPECT_NE(test::error_of([&] { save_quantized_hf(*nf4.model, nf4.orig, dir, DType::F32); }).find("float codes"),
            std::string::npos);
  // A group weight has no GGUF form: plain export_to still refuses it.
  ModelFile m = nf4.orig;
  EXPECT_NE(test::error_of([&] { nf4.model->export_to(m); }).find("Hugging Face"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(CompressedTensors, BadFilesAreRefusedWithClearErrors) {
  Quantized q = quantized_model("int4g128", "");
  const std::string dir = test::temp_dir("ct_bad");
  save_quantized_hf(*q.model, q.orig, dir, DType::F32);
  const std::string cfg_text = read_text_file(dir + "/config.json");
  const std::string p = "model.layers.0.self_attn.v_proj.";

  // weight_shape that disagrees with the packed codes
  edit_tensors(dir, [&](auto& t) { t[p + "weight_shape"].template ptr<int64_t>()[1] = 200; });
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("weight_packed"), std::string::npos);
  save_quantized_hf(*q.model, q.orig, dir, DType::F32);

  // scales of the wrong shape
  edit_tensors(dir, [&](auto& t) { t[p + "weight_scale"] = Tensor::zeros(DType::F32, {64, 3}); });
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("weight_scale"), std::string::npos);
  save_quantized_hf(*q.model, q.orig, dir, DType::F32);

  // an unknown format / method
  json cfg = json::parse(cfg_text);
  cfg["quantization_config"]["format"] = "marlin-24";
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("format 'marlin-24'"), std::string::npos);
  cfg = json::parse(cfg_text);
  cfg["quantization_config"]["quant_method"] = "gptq";
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("quant_method 'gptq'"), std::string::npos);
  // float weights, unsupported bit widths
  cfg = json::parse(cfg_text);
  cfg["quantization_config"]["config_groups"]["group_0"]["weights"]["type"] = "float";
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("type 'float'"), std::string::npos);
  // packed tensors but no quantization_config
  cfg = json::parse(cfg_text);
  cfg.erase("quantization_config");
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("no quantization_config"), std::string::npos);
  // a packed module the config ignores
  cfg = json::parse(cfg_text);
  cfg["quantization_config"]["ignore"] = json::array({"lm_head", "re:.*v_proj$"});
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("ignores it"), std::string::npos);

  write_text_file(dir + "/config.json", cfg_text);
  EXPECT_NO_THROW(load_model(dir));
  std::filesystem::remove_all(dir);
}

TEST(CompressedTensors, ZeroPointsPackAlongRows) {
  const PackedScheme s{4, 32, false};
  Tensor z = Tensor::alloc(DType::I32, {9, 2});
  for (int i = 0; i < 18; ++i) z.ptr<int32_t>()[i] = i % 16;
  const Tensor f = ct_zero_point_to_file(z, s);
  ASSERT_EQ(f.shape, (std::vector<int64_t>{2, 2}));
  // rows 0..7 of column 0 in word (0, 0), nibble r; row 8 in word (1, 0)
  EXPECT_EQ(uint32_t(f.ptr<int32_t>()[0]), 0xECA86420u);
  EXPECT_EQ(f.ptr<int32_t>()[2], 0);  // row 8, column 0: value 16 % 16 = 0
  EXPECT_EQ(f.ptr<int32_t>()[3], 1);  // row 8, column 1: 17 % 16
  const Tensor back = ct_zero_point_from_file(f, s, 9, "test");
  for (int i = 0; i < 18; ++i) EXPECT_EQ(back.ptr<int32_t>()[i], z.ptr<int32_t>()[i]);
  // per tensor: signed int8, zero 8 of int4 is 0
  const PackedScheme t{4, -1, false};
  Tensor one = Tensor::alloc(DType::I32, {1});
  one.ptr<int32_t>()[0] = 3;
  const Tensor ft = ct_zero_point_to_file(one, t);
  EXPECT_EQ(ft.dtype, DType::I8);
  EXPECT_EQ(ft.ptr<int8_t>()[0], -5);
  EXPECT_EQ(ct_zero_point_from_file(ft, t, 7, "test").ptr<int32_t>()[0], 3);
}

// A real model (teacher-9M, HF): RTN int4g128 written pack-quantized is a
// quarter of the F32 linears' size and loads back to the same logits.
TEST(CompressedTensors, Teacher9MInt4RoundTrip) {
  SHRINK_REQUIRE_ASSET(hf, "models/teacher-9M/hf");
  const ModelFile orig = load_model(hf, test::with_tokenizer());
  Transformer model(orig);
  quant::QuantizeOptions opt;
  opt.target = opt.head = quant::QuantTarget::parse("int4g128");
  quant::quantize_model(model, {}, opt);
  const std::vector<float> before = logits_of(model);
  const std::string dir = test::temp_dir("ct_teacher");
  save_quantized_hf(model, orig, dir, DType::F32);
  const ModelFile loaded = load_model(dir, test::with_tokenizer());  // the tokenizer travels with it
  EXPECT_EQ(loaded.packed.size(), model.linears().size());
  Transformer back(loaded);
  const std::vector<float> after = logits_of(back);
  for (size_t i = 0; i < before.size(); ++i) ASSERT_EQ(before[i], after[i]) << i;
  int64_t packed_bytes = 0, dense_bytes = 0;
  for (const auto& [base, _] : loaded.packed) {
    for (const char* s : {".weight_packed", ".weight_scale", ".weight_zero_point"})
      packed_bytes += loaded.get(base + s).nbytes();
    dense_bytes += orig.get(base + ".weight").nbytes();
  }
  EXPECT_LT(packed_bytes, dense_bytes / 5);  // 4 bits + f32 scale and zero per 128 vs 32 bits
  std::filesystem::remove_all(dir);
}
