// W8A8 models (compress/actquant) saved as compressed-tensors "int-quantized"
// HF directories and loaded back: the same int8 codes, scales and activation
// scheme, bit-identical logits, for every method (dynamic, static w8a8,
// SmoothQuant with its smoothed norms, LLM.int8() through the shrink-specific
// outlier threshold); the file follows the int-quantized conventions (I8
// weight {out, in}, weight_scale {out, 1}, input_scale {1}, q/k rows in HF's
// rotate-half order); bad files are refused clearly.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "compress/actquant/w8a8.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "model/int8_weight.h"
#include "model/random_init.h"
#include "test_util.h"

using namespace shrink;
using json = nlohmann::json;

namespace {

// GQA (2 KV heads of 4) so q and k permute with different head counts.
ModelConfig small_config() {
  ModelConfig c = preset_config("tiny");
  c.dim = 128, c.hidden_dim = 172, c.n_heads = 4, c.n_kv_heads = 2;
  c.validate("test");
  return c;
}

calib::CalibSet random_calib() {
  calib::CalibSet c;
  for (uint32_t s = 0; s < 4; ++s) c.seqs.push_back(test::random_tokens(48, 200 + s));
  return c;
}

struct W8A8Model {
  ModelFile orig;
  std::unique_ptr<Transformer> model;
};

// An F16 random model (so the exact save must keep smoothed norms in F32) quantized by `method`.
W8A8Model w8a8_model(const std::string& method, uint64_t seed = 4) {
  W8A8Model q;
  q.orig = random_model(small_config(), DType::F16, seed);
  q.model = std::make_unique<Transformer>(q.orig);
  actquant::ActQuantOptions opt;
  opt.method = method;
  opt.observer = actquant::parse_observer("percentile");
  opt.smooth_all = true;
  actquant::quantize_activations(*q.model, random_calib(), opt);
  return q;
}

void expect_same_int8(Transformer& a, Transformer& b) {
  const auto la = a.linears(), lb = b.linears();
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    const auto* x = dynamic_cast<const Int8Weight*>(&la[i]->weight());
    const auto* y = dynamic_cast<const Int8Weight*>(&lb[i]->weight());
    ASSERT_EQ(x == nullptr, y == nullptr) << la[i]->name();
    if (!x) continue;
    EXPECT_EQ(x->codes(), y->codes()) << la[i]->name();
    EXPECT_EQ(x->scales(), y->scales()) << la[i]->name();
    EXPECT_EQ(x->activations().static_scale, y->activations().static_scale) << la[i]->name();
    EXPECT_EQ(x->activations().outlier_threshold, y->activations().outlier_threshold) << la[i]->name();
  }
}

void round_trip(const std::string& method) {
  W8A8Model q = w8a8_model(method);
  const std::vector<int32_t> toks = test::random_tokens(24, 9);
  const std::vector<float> before = test::all_logits(*q.model, toks);
  const std::string dir = test::temp_dir("w8a8_" + method);
  save_quantized_hf(*q.model, q.orig, dir, DType::F16, true);
  const ModelFile loaded = load_model(dir);
  EXPECT_EQ(loaded.int8.size(), size_t(7 * loaded.config.n_layers)) << method;
  EXPECT_TRUE(loaded.packed.empty());
  Transformer back(loaded);
  expect_same_int8(*q.model, back);
  const std::vector<float> after = test::all_logits(back, toks);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) ASSERT_EQ(before[i], after[i]) << method << " logit " << i;
  std::filesystem::remove_all(dir);
}

json read_config(const std::string& dir) { return json::parse(read_text_file(dir + "/config.json")); }

void edit_tensors(const std::string& dir, const std::function<void(std::map<std::string, Tensor>&)>& edit) {
  test::edit_safetensors(dir + "/model.safetensors", edit);
}

}  // namespace

TEST(W8A8Save, DynamicRoundTripsBitExact) { round_trip("dynamic"); }
TEST(W8A8Save, StaticRoundTripsBitExact) { round_trip("w8a8"); }
TEST(W8A8Save, SmoothQuantRoundTripsBitExact) { round_trip("smoothquant"); }
TEST(W8A8Save, LlmInt8RoundTripsBitExact) { round_trip("llm-int8"); }

// The file is what llm-compressor writes for its W8A8 scheme and vLLM's
// CompressedTensorsW8A8Int8 reads.
TEST(W8A8Save, FileFollowsIntQuantizedConventions) {
  for (const std::string method : {"dynamic", "w8a8", "llm-int8"}) {
    W8A8Model q = w8a8_model(method);
    const std::string dir = test::temp_dir("w8a8_layout");
    save_quantized_hf(*q.model, q.orig, dir, DType::F16, true);
    const json qc = read_config(dir).at("quantization_config");
    EXPECT_EQ(qc.at("quant_method"), "compressed-tensors");
    EXPECT_EQ(qc.at("format"), "int-quantized");
    EXPECT_EQ(qc.at("ignore"), json::array({"lm_head"}));
    ASSERT_EQ(qc.at("config_groups").size(), 1u);
    const json& g = qc.at("config_groups").at("group_0");
    EXPECT_EQ(g.at("targets"), json::array({"Linear"}));
    const json& w = g.at("weights");
    EXPECT_EQ(w.at("num_bits"), 8);
    EXPECT_EQ(w.at("type"), "int");
    EXPECT_EQ(w.at("symmetric"), true);
    EXPECT_EQ(w.at("strategy"), "channel");
    EXPECT_EQ(w.at("dynamic"), false);
    const json& a = g.at("input_activations");
    const bool is_static = method == "w8a8";
    EXPECT_EQ(a.at("num_bits"), 8);
    EXPECT_EQ(a.at("type"), "int");
    EXPECT_EQ(a.at("symmetric"), true);
    EXPECT_EQ(a.at("strategy"), is_static ? "tensor" : "token");
    EXPECT_EQ(a.at("dynamic"), !is_static);
    EXPECT_EQ(read_config(dir).contains("shrink_outlier_threshold"), method == "llm-int8");
    if (method == "llm-int8") {
      EXPECT_EQ(read_config(dir).at("shrink_outlier_threshold"), 6.0);
    }

    const auto st = read_safetensors(dir + "/model.safetensors");
    const ModelConfig& c = q.orig.config;
    auto& blk = q.model->block(0);
    for (const auto& [hf, lin, heads] :
         {std::tuple<std::string, Linear*, int>{"self_attn.q_proj", &blk.wq, c.n_heads},
          {"self_attn.k_proj", &blk.wk, c.n_kv_heads},
          {"mlp.down_proj", &blk.w_down, 0}}) {
      const std::string p = "model.layers.0." + hf + ".";
      const auto& x = dynamic_cast<const Int8Weight&>(lin->weight());
      const Tensor& codes = st.tensors.at(p + "weight");
      const Tensor& scale = st.tensors.at(p + "weight_scale");
      ASSERT_EQ(codes.dtype, DType::I8);
      ASSERT_EQ(codes.shape, (std::vector<int64_t>{x.out_features(), x.in_features()}));
      ASSERT_EQ(scale.shape, (std::vector<int64_t>{x.out_features(), 1}));
      // HF's rows: q/k in rotate-half order, codes and scales alike.
      Tensor want_codes = Tensor::alloc(DType::I8, codes.shape), want_scale = Tensor::alloc(DType::F32, scale.shape);
      std::copy(x.codes().begin(), x.codes().end(), want_codes.ptr<int8_t>());
      std::copy(x.scales().begin(), x.scales().end(), want_scale.f32());
      if (heads) want_codes = hf_permute_qk(want_codes, heads), want_scale = hf_permute_qk(want_scale, heads);
      EXPECT_EQ(std::memcmp(codes.data, want_codes.data, size_t(codes.nbytes())), 0) << hf;
      const Tensor s32 = scale.to(DType::F32);
      EXPECT_EQ(std::memcmp(s32.data, want_scale.data, size_t(s32.nbytes())), 0) << hf;
      EXPECT_EQ(st.tensors.count(p + "input_scale"), is_static ? 1u : 0u) << hf;
      if (is_static) {
        EXPECT_EQ(st.tensors.at(p + "input_scale").shape, std::vector<int64_t>{1});
        EXPECT_EQ(st.tensors.at(p + "input_scale").to(DType::F32).f32()[0], x.activations().static_scale);
      }
    }
    EXPECT_FALSE(st.tensors.count("lm_head.weight_scale"));
    std::filesystem::remove_all(dir);
  }
}

TEST(W8A8Save, BadFilesAreRefusedWithClearErrors) {
  W8A8Model q = w8a8_model("w8a8");
  const std::string dir = test::temp_dir("w8a8_bad");
  save_quantized_hf(*q.model, q.orig, dir, DType::F32, true);
  const std::string cfg_text = read_text_file(dir + "/config.json");
  const std::string p = "model.layers.0.self_attn.v_proj.";

  edit_tensors(dir, [&](auto& t) { t.erase(p + "input_scale"); });
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("input_scale"), std::string::npos);
  save_quantized_hf(*q.model, q.orig, dir, DType::F32, true);
  edit_tensors(dir, [&](auto& t) { t[p + "weight_scale"] = Tensor::zeros(DType::F32, {3}); });
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("weight_scale"), std::string::npos);
  edit_tensors(dir, [&](auto& t) { t.erase(p + "weight_scale"); });
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("no weight_scale"), std::string::npos);
  save_quantized_hf(*q.model, q.orig, dir, DType::F32, true);

  json cfg = json::parse(cfg_text);
  cfg["quantization_config"]["config_groups"]["group_0"]["input_activations"] = nullptr;  // W8A16
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("W8A16"), std::string::npos);
  cfg = json::parse(cfg_text);
  cfg["quantization_config"]["config_groups"]["group_0"]["input_activations"]["symmetric"] = false;
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("asymmetric"), std::string::npos);
  cfg = json::parse(cfg_text);
  cfg["quantization_config"]["config_groups"]["group_0"]["weights"]["strategy"] = "tensor";
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("per channel"), std::string::npos);
  cfg = json::parse(cfg_text);
  cfg["quantization_config"]["format"] = "pack-quantized";
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("not int-quantized"), std::string::npos);
  cfg = json::parse(cfg_text);
  cfg["shrink_outlier_threshold"] = 6.0;  // LLM.int8() needs per-token scales
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("per-token"), std::string::npos);
  cfg = json::parse(cfg_text);
  cfg.erase("quantization_config");
  write_text_file(dir + "/config.json", cfg.dump());
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("no quantization_config"), std::string::npos);

  write_text_file(dir + "/config.json", cfg_text);
  EXPECT_NO_THROW(load_model(dir));
  // A dense weight stored as I8 without scales is not a W8A8 linear.
  edit_tensors(dir, [&](auto& t) { t["model.norm.weight"] = Tensor::zeros(DType::I8, {small_config().dim}); });
  EXPECT_NE(test::error_of([&] { load_model(dir); }).find("int8"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// A real model (teacher-9M, HF, q/k permuted on disk): per-token W8A8 saved
// and loaded gives the logits of the model quantized in memory.
TEST(W8A8Save, Teacher9MDynamicRoundTrip) {
  SHRINK_REQUIRE_ASSET(dir_in, "models/teacher-9M/hf");
  const ModelFile f = load_model(dir_in);
  Transformer model(f);
  actquant::ActQuantOptions opt;
  opt.method = "dynamic";
  actquant::quantize_activations(model, {}, opt);
  const std::vector<int32_t> toks = test::random_tokens(32, 5);
  const std::vector<float> before = test::all_logits(model, toks);
  const std::string dir = test::temp_dir("w8a8_teacher");
  save_quantized_hf(model, f, dir, DType::F32, true);
  Transformer back(load_model(dir));
  expect_same_int8(model, back);
  EXPECT_EQ(before, test::all_logits(back, toks));
  std::filesystem::remove_all(dir);
}
