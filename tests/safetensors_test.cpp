// safetensors reading/writing (round trips, malformed files) and the Hugging
// Face directory reader/writer (q/k permutation, GPT-2 transposes, real files).
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "io/model_file.h"
#include "test_util.h"

namespace shrink {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

Tensor random_tensor(DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  Tensor f = Tensor::alloc(DType::F32, shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t i = 0; i < f.numel(); ++i) f.f32()[i] = dist(rng);
  return f.to(dtype);
}

Tensor iota_i32(std::vector<int64_t> shape) {
  Tensor t = Tensor::alloc(DType::I32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.ptr<int32_t>()[i] = static_cast<int32_t>(i * 7 - 3);
  return t;
}

Tensor f64_tensor(std::vector<int64_t> shape) {
  Tensor t = Tensor::alloc(DType::F64, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.ptr<double>()[i] = 0.25 * double(i) - 1.0 / 3.0;
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape &&
         (a.nbytes() == 0 || std::memcmp(a.data, b.data, static_cast<size_t>(a.nbytes())) == 0);
}

void expect_same_tensors(const std::map<std::string, Tensor>& want, const std::map<std::string, Tensor>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, t] : want) {
    auto it = got.find(name);
    ASSERT_NE(it, got.end()) << name;
    EXPECT_TRUE(same_bytes(t, it->second)) << name << " " << dtype_name(t.dtype) << " " << shape_str(t.shape) << " vs "
                                           << dtype_name(it->second.dtype) << " " << shape_str(it->second.shape);
  }
}

std::string read_bytes(const std::string& path) { return read_text_file(path); }
using test::write_bytes;

// A raw safetensors file: 8-byte length, header text, data.
std::string raw_file(const std::string& header, const std::string& data, uint64_t len_override = 0) {
  uint64_t n = len_override ? len_override : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Reading `bytes` must throw a one-line shrink::Error that names the file and contains `what`.
void expect_rejected(const std::string& dir, const std::string& bytes, const std::string& what) {
  const std::string path = dir + "/bad.safetensors";
  write_bytes(path, bytes);
  try {
    read_safetensors(path);
    ADD_FAILURE() << "accepted a malformed file (expected: " << what << ")";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

std::map<std::string, Tensor> mixed_tensors() {
  return {{"a.f32", random_tensor(DType::F32, {3, 5}, 1)},
          {"b.f16", random_tensor(DType::F16, {7}, 2)},
          {"c.bf16", random_tensor(DType::BF16, {2, 3, 1}, 3)},
          {"d.i32", iota_i32({4})},
          {"e.scalar", random_tensor(DType::F32, {}, 4)},
          {"f.empty", random_tensor(DType::F32, {0, 4}, 5)},
          {"g.f64", f64_tensor({3})}};
}

TEST(Safetensors, RoundTripMixedDtypesAndMetadata) {
  const std::string dir = test::temp_dir("st_roundtrip");
  const std::string path = dir + "/x.safetensors";
  const auto tensors = mixed_tensors();
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "hello"}});
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "header must be padded to a multiple of 8";
  const SafetensorsData d = read_safetensors(path);
  expect_same_tensors(tensors, d.tensors);
  EXPECT_EQ(d.metadata.at("format"), "pt");
  EXPECT_EQ(d.metadata.at("note"), "hello");
  // Views into one mapping: every pointer lies inside the file's data, aligned to its element.
  const auto* base = static_cast<const uint8_t*>(d.tensors.at("a.f32").data);
  for (const auto& [name, t] : d.tensors) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % dtype_bytes(t.dtype, 1), 0u) << name;
    EXPECT_LT(std::abs(p - base), static_cast<std::ptrdiff_t>(bytes.size())) << name;
  }
}

TEST(Safetensors, ReadsEveryDtype) {
  const std::string dir = test::temp_dir("st_dtypes");
  const std::string path = dir + "/x.safetensors";
  std::string data(8 + 4 + 2 + 1 + 2 + 8, '\x01');
  const json h = {{"f64", {{"dtype", "F64"}, {"shape", {1}}, {"data_offsets", {0, 8}}}},
                  {"i32", {{"dtype", "I32"}, {"shape", {1}}, {"data_offsets", {8, 12}}}},
                  {"f16", {{"dtype", "F16"}, {"shape", {1}}, {"data_offsets", {12, 14}}}},
                  {"i8", {{"dtype", "I8"}, {"shape", {1}}, {"data_offsets", {14, 15}}}},
                  {"i16", {{"dtype", "I16"}, {"shape", {1}}, {"data_offsets", {15, 17}}}},
                  {"i64", {{"dtype", "I64"}, {"shape", {1}}, {"data_offsets", {17, 25}}}}};
  write_bytes(path, raw_file(h.dump(), data));
  const SafetensorsData d = read_safetensors(path);
  EXPECT_EQ(d.tensors.at("f64").dtype, DType::F64);
  EXPECT_EQ(d.tensors.at("i8").dtype, DType::I8);
  EXPECT_EQ(d.tensors.at("i16").dtype, DType::I16);
  EXPECT_EQ(d.tensors.at("i64").dtype, DType::I64);
  EXPECT_EQ(d.tensors.at("i32").ptr<int32_t>()[0], 0x01010101);  // misaligned data is copied, still correct
}

TEST(Safetensors, ShardedWriteAndRead) {
  const std::string dir = test::temp_dir("st_sharded");
  std::vector<TensorSource> sources;
  std::map<std::string, Tensor> tensors;
  for (int i = 0; i < 7; ++i) {
    const std::string name = "t" + std::to_string(i);
    tensors[name] = random_tensor(i % 2 ? DType::BF16 : DType::F32, {5, 4 + i}, 10 + i);
    sources.push_back(source_of(name, tensors[name]));
  }
  const auto files = write_safetensors_model(dir, sources, {{"format", "pt"}}, 200);
  ASSERT_GT(files.size(), 2u);
  EXPECT_EQ(files.back(), "model.safetensors.index.json");
  EXPECT_EQ(files.front(), "model-00001-of-" + std::string(5 - std::to_string(files.size() - 1).size(), '0') +
                               std::to_string(files.size() - 1) + ".safetensors");
  const json idx = json::parse(read_text_file(dir + "/model.safetensors.index.json"));
  EXPECT_EQ(idx["weight_map"].size(), tensors.size());
  SafetensorsData d = read_safetensors_dir(dir);
  expect_same_tensors(tensors, d.tensors);
  EXPECT_EQ(d.files.size(), files.size() - 1);
  EXPECT_EQ(d.metadata.at("format"), "pt");
  for (size_t i = 0; i + 1 < files.size(); ++i) EXPECT_LE(fs::file_size(dir + "/" + files[i]), 200u + 512u);

  // Rewriting unsharded removes the stale index, and the reverse removes the stale single file.
  write_safetensors_model(dir, sources, {}, kDefaultShardBytes);
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  expect_same_tensors(tensors, read_safetensors_dir(dir).tensors);
  write_safetensors_model(dir, sources, {}, 300);
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  expect_same_tensors(tensors, read_safetensors_dir(dir).tensors);
}

TEST(Safetensors, IndexErrors) {
  const std::string dir = test::temp_dir("st_index");
  write_safetensors(dir + "/a.safetensors", std::map<std::string, Tensor>{{"x", random_tensor(DType::F32, {2}, 1)}});
  write_text_file(dir + "/model.safetensors.index.json", R"({"weight_map": {"y": "a.safetensors"}})");
  EXPECT_THROW(read_safetensors_dir(dir), Error);
  write_text_file(dir + "/model.safetensors.index.json", R"({"weight_map": {"x": "missing.safetensors"}})");
  EXPECT_THROW(read_safetensors_dir(dir), Error);
  write_text_file(dir + "/model.safetensors.index.json", R"({"weight_map": [1, 2]})");
  EXPECT_THROW(read_safetensors_dir(dir), Error);
  write_text_file(dir + "/model.safetensors.index.json", R"({"weight_map": )");
  EXPECT_THROW(read_safetensors_dir(dir), Error);
  write_text_file(dir + "/model.safetensors.index.json", R"({"weight_map": {"x": "a.safetensors"}})");
  EXPECT_EQ(read_safetensors_dir(dir).tensors.size(), 1u);
  EXPECT_THROW(read_safetensors_dir(test::temp_dir("st_empty")), Error);
}

TEST(Safetensors, EveryTruncationIsRejected) {
  const std::string dir = test::temp_dir("st_trunc");
  const std::string path = dir + "/x.safetensors";
  write_safetensors(path, mixed_tensors(), {{"format", "pt"}});
  const std::string bytes = read_bytes(path);
  ASSERT_GT(bytes.size(), 100u);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    write_bytes(path, bytes.substr(0, cut));
    EXPECT_THROW(read_safetensors(path), Error) << "truncated at " << cut << " of " << bytes.size();
  }
  write_bytes(path, bytes + "x");  // trailing garbage is as wrong as missing data
  EXPECT_THROW(read_safetensors(path), Error);
}

// Corrupting any single header byte either still reads or throws shrink::Error; never a crash.
TEST(Safetensors, CorruptHeaderBytesNeverCrash) {
  const std::string dir = test::temp_dir("st_flip");
  const std::string path = dir + "/x.safetensors";
  write_safetensors(path, mixed_tensors(), {{"format", "pt"}});
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  int rejected = 0;
  for (size_t i = 0; i < 8 + n; ++i)
    for (unsigned char x : {0x01, 0x20}) {  // digits; letter case, quotes and spaces
      std::string b = bytes;
      b[i] = static_cast<char>(b[i] ^ x);
      write_bytes(path, b);
      try {
        read_safetensors(path);
      } catch (const Error&) {
        ++rejected;
      }
    }
  EXPECT_GT(rejected, 0);
}

TEST(Safetensors, MalformedHeadersAreRejected) {
  const std::string dir = test::temp_dir("st_bad");
  const std::string data(16, '\0');
  auto one = [](const json& entry) { return json{{"x", entry}}.dump(); };
  const json good = {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}};
  ASSERT_NO_THROW(write_bytes(dir + "/ok.safetensors", raw_file(one(good), data)));
  ASSERT_NO_THROW(read_safetensors(dir + "/ok.safetensors"));

  expect_rejected(dir, raw_file(one(good), data, 1000), "exceeds the file size");
  expect_rejected(dir, raw_file(one(good), data, ~uint64_t(0)), "exceeds the file size");
  expect_rejected(dir, "abc", "too short");
  expect_rejected(dir, raw_file("{\"x\": {\"dtype\": \"F32\", ", data), "not valid JSON");
  expect_rejected(dir, raw_file("[1, 2, 3]", data), "does not start with '{'");
  expect_rejected(dir, raw_file("{\"x\": 5}", data), "expected an object");
  json e = good;
  e["data_offsets"] = {0, 32};
  expect_rejected(dir, raw_file(one(e), data), "past the end");
  e["data_offsets"] = {8, 4};
  expect_rejected(dir, raw_file(one(e), data), "reversed");
  e = good;
  e["shape"] = {3, 2};
  expect_rejected(dir, raw_file(one(e), data), "needs 24");
  e["shape"] = {2, -2};
  expect_rejected(dir, raw_file(one(e), data), "non-negative");
  e["shape"] = {uint64_t(1) << 40, uint64_t(1) << 40};
  expect_rejected(dir, raw_file(one(e), data), "implausibly large");
  e = good;
  e["dtype"] = "Q7";
  expect_rejected(dir, raw_file(one(e), data), "unsupported dtype 'Q7'");
  e["dtype"] = 3;
  expect_rejected(dir, raw_file(one(e), data), "dtype");
  e = good;
  e.erase("data_offsets");
  expect_rejected(dir, raw_file(one(e), data), "data_offsets");
  const json overlap = {{"x", good}, {"y", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {12, 16}}}}};
  expect_rejected(dir, raw_file(overlap.dump(), data), "overlap");
  const json hole = {{"x", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {4, 8}}}}};
  expect_rejected(dir, raw_file(hole.dump(), std::string(8, '\0')), "hole");
  expect_rejected(dir, raw_file(json{{"__metadata__", {{"a", 1}}}}.dump(), ""), "__metadata__");
}

// ---------------------------------------------------------------- q/k permutation

TEST(HfPermute, HandCheckedExample) {
  // One bias row per output row, values = interleaved row index.
  Tensor t = Tensor::alloc(DType::F32, {12});
  for (int i = 0; i < 12; ++i) t.f32()[i] = float(i);
  // 2 heads of head_dim 6: HF keeps the first element of each pair, then the second.
  const Tensor hf = hf_permute_qk(t, 2);
  const float want[12] = {0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(hf.f32()[i], want[i]) << i;
  const Tensor back = hf_unpermute_qk(hf, 2);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(back.f32()[i], float(i));
}

TEST(HfPermute, MatchesTorchViewTransposeAndInverts) {
  // HF: w.view(heads, hd/2, 2, cols).transpose(1, 2).reshape(heads*hd, cols).
  const int heads = 3, hd = 8, cols = 5;
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const Tensor w = random_tensor(dt, {heads * hd, cols}, 42);
    const Tensor hf = hf_permute_qk(w, heads);
    const size_t es = static_cast<size_t>(dtype_bytes(dt, 1));
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < 2; ++j)
        for (int i = 0; i < hd / 2; ++i) {
          const int out_row = h * hd + j * (hd / 2) + i, in_row = h * hd + 2 * i + j;
          EXPECT_EQ(
              std::memcmp(hf.ptr<uint8_t>() + out_row * cols * es, w.ptr<uint8_t>() + in_row * cols * es, cols * es),
              0);
        }
    EXPECT_TRUE(same_bytes(hf_unpermute_qk(hf, heads), w));
    EXPECT_TRUE(same_bytes(hf_permute_qk(hf_unpermute_qk(w, heads), heads), w));
  }
  EXPECT_THROW(hf_permute_qk(random_tensor(DType::F32, {10, 2}, 1), 3), Error);
}

// Rotate-half RoPE on HF-ordered q/k gives the same scores as interleaved RoPE
// on the un-permuted rows: the permutation is the right one, not merely a permutation.
TEST(HfPermute, RotateHalfOnHfOrderEqualsInterleavedOnMetaOrder) {
  const int hd = 8, half = hd / 2;
  const Tensor q = random_tensor(DType::F32, {hd}, 7), k = random_tensor(DType::F32, {hd}, 8);
  const Tensor qh = hf_permute_qk(q, 1), kh = hf_permute_qk(k, 1);
  auto rope = [&](const float* x, int pos, bool interleaved, float* out) {
    for (int i = 0; i < half; ++i) {
      const double th = pos * std::pow(10000.0, -2.0 * i / hd);
      const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
      out[a] = float(x[a] * std::cos(th) - x[b] * std::sin(th));
      out[b] = float(x[a] * std::sin(th) + x[b] * std::cos(th));
    }
  };
  for (int pq : {0, 3, 17}) {
    float a[hd], b[hd], c[hd], d[hd];
    rope(q.f32(), pq, true, a);
    rope(k.f32(), 5, true, b);
    rope(qh.f32(), pq, false, c);
    rope(kh.f32(), 5, false, d);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < hd; ++i) s1 += a[i] * b[i], s2 += c[i] * d[i];
    EXPECT_NEAR(s1, s2, 1e-5);
  }
}

// ---------------------------------------------------------------- whole models

ModelFile tiny_model(Arch arch, bool qkv_bias, bool tied) {
  ModelFile m;
  ModelConfig& c = m.config;
  c.arch = arch;
  c.dim = 32, c.hidden_dim = 48, c.n_layers = 2, c.vocab_size = 50, c.max_seq_len = 64;
  c.n_heads = 4, c.n_kv_heads = arch == Arch::GPT2 ? 4 : 2;
  c.qkv_bias = qkv_bias, c.tied_embeddings = tied;
  c.norm_eps = 1e-5f, c.rope_theta = 500000.0f;
  c.validate("tiny");
  m.format = "test";
  const int64_t d = c.dim, h = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim(), V = c.vocab_size;
  uint32_t seed = 100;
  auto add = [&](const std::string& n, std::vector<int64_t> s) { m.tensors[n] = random_tensor(DType::F32, s, seed++); };
  add("token_embd.weight", {V, d});
  add("output_norm.weight", {d});
  if (!tied) add("output.weight", {V, d});
  if (arch == Arch::GPT2) add("output_norm.bias", {d}), add("position_embd.weight", {c.max_seq_len, d});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {d}), add(p + "ffn_norm.weight", {d});
    add(p + "attn_output.weight", {d, q}), add(p + "ffn_up.weight", {h, d}), add(p + "ffn_down.weight", {d, h});
    if (arch == Arch::GPT2) {
      add(p + "attn_qkv.weight", {q + 2 * kv, d}), add(p + "attn_qkv.bias", {q + 2 * kv});
      for (auto n : {"attn_norm.bias", "ffn_norm.bias", "attn_output.bias", "ffn_down.bias"}) add(p + n, {d});
      add(p + "ffn_up.bias", {h});
    } else {
      add(p + "attn_q.weight", {q, d}), add(p + "attn_k.weight", {kv, d}), add(p + "attn_v.weight", {kv, d});
      add(p + "ffn_gate.weight", {h, d});
      if (qkv_bias) add(p + "attn_q.bias", {q}), add(p + "attn_k.bias", {kv}), add(p + "attn_v.bias", {kv});
    }
  }
  check_model_tensors(m);
  return m;
}

std::map<std::string, Tensor> converted(const ModelFile& m, DType dt) {
  std::map<std::string, Tensor> out;
  for (const auto& [n, t] : m.tensors) out[n] = t.to(dt);
  return out;
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  test::expect_same_shape(a, b);
  EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(b.rope_style, RopeStyle::Interleaved);
  if (a.arch == Arch::Llama) {
    EXPECT_EQ(a.rope_theta, b.rope_theta);
  }
}

TEST(HfModel, LlamaGqaRoundTripInEveryDtype) {
  const ModelFile m = tiny_model(Arch::Llama, false, false);
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const std::string dir = test::temp_dir(std::string("hf_llama_") + std::string(dtype_name(dt)));
    save_hf(m, dir, dt);
    const ModelFile back = load_hf(dir);
    expect_same_config(m.config, back.config);
    expect_same_tensors(converted(m, dt), back.tensors);
    const json cfg = json::parse(read_text_file(dir + "/config.json"));
    EXPECT_EQ(cfg["model_type"], "llama");
    EXPECT_EQ(cfg["num_key_value_heads"], 2);
    EXPECT_EQ(cfg["rms_norm_eps"].get<double>(), 1e-5);
    EXPECT_EQ(cfg["torch_dtype"], dt == DType::F32 ? "float32" : dt == DType::F16 ? "float16" : "bfloat16");
    // The file itself holds HF's rotate-half order; v is untouched.
    const SafetensorsData st = read_safetensors(dir + "/model.safetensors");
    EXPECT_EQ(st.metadata.at("format"), "pt");
    EXPECT_TRUE(same_bytes(st.tensors.at("model.layers.1.self_attn.q_proj.weight"),
                           hf_permute_qk(m.get("blk.1.attn_q.weight").to(dt), 4)));
    EXPECT_TRUE(same_bytes(st.tensors.at("model.layers.1.self_attn.k_proj.weight"),
                           hf_permute_qk(m.get("blk.1.attn_k.weight").to(dt), 2)));
    EXPECT_TRUE(
        same_bytes(st.tensors.at("model.layers.1.self_attn.v_proj.weight"), m.get("blk.1.attn_v.weight").to(dt)));
  }
}

TEST(HfModel, LoadModelAcceptsSavedDirectory) {
  const std::string dir = test::temp_dir("hf_load_model");
  save_hf(tiny_model(Arch::Llama, false, true), dir, DType::F32);
  const ModelFile m = load_model(dir);
  EXPECT_EQ(m.format, "hf");
  EXPECT_TRUE(m.config.tied_embeddings);
  EXPECT_EQ(m.find("output.weight"), nullptr);
}

TEST(HfModel, Qwen2BiasesArePermutedToo) {
  const ModelFile m = tiny_model(Arch::Llama, true, true);
  const std::string dir = test::temp_dir("hf_qwen2");
  save_hf(m, dir, DType::F32);
  const json cfg = json::parse(read_text_file(dir + "/config.json"));
  EXPECT_EQ(cfg["model_type"], "qwen2");
  EXPECT_EQ(cfg["tie_word_embeddings"], true);
  const SafetensorsData st = read_safetensors(dir + "/model.safetensors");
  EXPECT_TRUE(
      same_bytes(st.tensors.at("model.layers.0.self_attn.k_proj.bias"), hf_permute_qk(m.get("blk.0.attn_k.bias"), 2)));
  EXPECT_EQ(st.tensors.count("lm_head.weight"), 0u);
  const ModelFile back = load_hf(dir);
  expect_same_config(m.config, back.config);
  expect_same_tensors(m.tensors, back.tensors);
}

TEST(HfModel, Gpt2RoundTripTransposesConv1D) {
  for (bool tied : {true, false}) {
    const ModelFile m = tiny_model(Arch::GPT2, false, tied);
    const std::string dir = test::temp_dir(std::string("hf_gpt2_") + (tied ? "tied" : "untied"));
    save_hf(m, dir, DType::F32);
    const SafetensorsData st = read_safetensors(dir + "/model.safetensors");
    EXPECT_TRUE(
        same_bytes(st.tensors.at("transformer.h.1.attn.c_attn.weight"), transpose_2d(m.get("blk.1.attn_qkv.weight"))));
    EXPECT_EQ(st.tensors.at("transformer.h.0.mlp.c_fc.weight").shape, (std::vector<int64_t>{32, 48}));
    EXPECT_EQ(st.tensors.count("lm_head.weight"), tied ? 0u : 1u);
    const ModelFile back = load_hf(dir);
    expect_same_config(m.config, back.config);
    expect_same_tensors(m.tensors, back.tensors);
  }
}

// A GPT-2 checkpoint as the hub stores it: no "transformer." prefix, attention-mask buffers.
TEST(HfModel, Gpt2HubNamesAndBuffers) {
  const ModelFile m = tiny_model(Arch::GPT2, false, true);
  const std::string dir = test::temp_dir("hf_gpt2_hub");
  save_hf(m, dir, DType::F32);
  SafetensorsData st = read_safetensors(dir + "/model.safetensors");
  std::map<std::string, Tensor> renamed;
  for (auto& [n, t] : st.tensors) renamed[n.substr(std::string("transformer.").size())] = t.clone();
  renamed["h.0.attn.bias"] = random_tensor(DType::F32, {1, 1, 64, 64}, 1);
  renamed["h.1.attn.masked_bias"] = random_tensor(DType::F32, {}, 2);
  st.tensors.clear();
  write_safetensors(dir + "/model.safetensors", renamed, {{"format", "pt"}});
  expect_same_tensors(m.tensors, load_hf(dir).tensors);
}

TEST(HfModel, ShardedDirectoryLoads) {
  const ModelFile m = tiny_model(Arch::Llama, false, false);
  const std::string dir = test::temp_dir("hf_sharded");
  save_hf(m, dir, DType::BF16);
  const SafetensorsData st = read_safetensors(dir + "/model.safetensors");
  std::vector<TensorSource> src;
  for (const auto& [n, t] : st.tensors) src.push_back(source_of(n, t.clone()));
  ASSERT_GT(write_safetensors_model(dir, src, {{"format", "pt"}}, 4096).size(), 3u);
  expect_same_tensors(converted(m, DType::BF16), load_hf(dir).tensors);
}

TEST(HfModel, UnknownTensorsAndBuffers) {
  const ModelFile m = tiny_model(Arch::Llama, false, false);
  const std::string dir = test::temp_dir("hf_unknown");
  save_hf(m, dir, DType::F32);
  SafetensorsData st = read_safetensors(dir + "/model.safetensors");
  std::map<std::string, Tensor> ts;
  for (auto& [n, t] : st.tensors) ts[n] = t.clone();
  ts["model.layers.0.self_attn.rotary_emb.inv_freq"] = random_tensor(DType::F32, {4}, 1);  // known buffer: skipped
  write_safetensors(dir + "/model.safetensors", ts);
  EXPECT_NO_THROW(load_hf(dir));
  ts["model.layers.0.mystery.weight"] = random_tensor(DType::F32, {4}, 2);
  ts["model.layers.9.mlp.up_proj.weight"] = random_tensor(DType::F32, {4}, 3);  // layer out of range
  write_safetensors(dir + "/model.safetensors", ts);
  try {
    load_hf(dir);
    ADD_FAILURE() << "unknown tensors accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mystery.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.layers.9.mlp.up_proj.weight"), std::string::npos) << e.what();
  }
  ts.erase("model.layers.0.mystery.weight"), ts.erase("model.layers.9.mlp.up_proj.weight");
  ts["model.norm.weight"] = iota_i32({32});
  write_safetensors(dir + "/model.safetensors", ts);
  EXPECT_THROW(load_hf(dir), Error);
}

TEST(HfModel, HeadAbsentMeansTied) {
  const ModelFile m = tiny_model(Arch::Llama, false, false);
  const std::string dir = test::temp_dir("hf_tied");
  save_hf(m, dir, DType::F32);
  SafetensorsData st = read_safetensors(dir + "/model.safetensors");
  std::map<std::string, Tensor> ts;
  for (auto& [n, t] : st.tensors)
    if (n != "lm_head.weight") ts[n] = t.clone();
  write_safetensors(dir + "/model.safetensors", ts);
  const ModelFile back = load_hf(dir);
  EXPECT_TRUE(back.config.tied_embeddings);
  EXPECT_EQ(back.find("output.weight"), nullptr);
}

void write_config(const std::string& dir, const json& cfg) { write_text_file(dir + "/config.json", cfg.dump()); }

TEST(HfModel, ConfigVariants) {
  const ModelFile m = tiny_model(Arch::Llama, false, false);
  const std::string dir = test::temp_dir("hf_config");
  save_hf(m, dir, DType::F32);
  json cfg = json::parse(read_text_file(dir + "/config.json"));

  json c = cfg;
  c["model_type"] = "bert";
  write_config(dir, c);
  try {
    load_hf(dir);
    ADD_FAILURE() << "bert accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("supported: llama, mistral, qwen2, gpt2"), std::string::npos) << e.what();
  }
  c.erase("model_type");
  c["architectures"] = {"MistralForCausalLM"};
  write_config(dir, c);
  EXPECT_EQ(load_hf(dir).config.arch, Arch::Llama);

  c = cfg;
  c["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  c.erase("head_dim");
  write_config(dir, c);
  EXPECT_EQ(load_hf(dir).config.rope_scale, 4.0f);
  EXPECT_EQ(load_hf(dir).config.head_dim, 8);
  c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  write_config(dir, c);
  EXPECT_THROW(load_hf(dir), Error);

  c = cfg;
  c.erase("hidden_size");
  write_config(dir, c);
  EXPECT_THROW(load_hf(dir), Error);
  write_text_file(dir + "/config.json", "{ not json");
  EXPECT_THROW(load_hf(dir), Error);
}

TEST(HfModel, SaveWithLinearRopeScalingAndBadDtype) {
  ModelFile m = tiny_model(Arch::Llama, false, false);
  m.config.rope_scale = 2.0f;
  const std::string dir = test::temp_dir("hf_rope_scale");
  save_hf(m, dir, DType::F32);
  EXPECT_EQ(load_hf(dir).config.rope_scale, 2.0f);
  EXPECT_THROW(save_hf(m, test::temp_dir("hf_bad_dtype"), DType::I8), Error);
  m.tensors["blk.0.strange.weight"] = random_tensor(DType::F32, {2}, 1);
  EXPECT_THROW(save_hf(m, test::temp_dir("hf_bad_name"), DType::F32), Error);
}

TEST(HfModel, TokenizerFilesAreCopied) {
  const std::string src = test::temp_dir("hf_tok_src");
  ModelFile m = tiny_model(Arch::Llama, false, false);
  save_hf(m, src, DType::F32);
  write_text_file(src + "/tokenizer.model", std::string("\x0a\x05hello\x00", 8));
  write_text_file(src + "/tokenizer_config.json", "{}");
  m = load_hf(src);
  const std::string dst = test::temp_dir("hf_tok_dst") + "/nested/out";
  save_hf(m, dst, DType::F16);
  EXPECT_EQ(read_text_file(dst + "/tokenizer.model"), read_text_file(src + "/tokenizer.model"));
  EXPECT_EQ(read_text_file(dst + "/tokenizer_config.json"), "{}");
  EXPECT_FALSE(fs::exists(dst + "/vocab.json"));
  save_hf(m, src, DType::F32);  // saving over the source directory keeps its tokenizer
  EXPECT_EQ(read_text_file(src + "/tokenizer_config.json"), "{}");
}

// The real teacher: the HF export (q/k permuted for rotate-half) must give the
// very same bits as the llama2.c export once un-permuted.
TEST(HfModel, Teacher9MMatchesLlama2c) {
  SHRINK_REQUIRE_ASSET(hf_dir, "models/teacher-9M/hf");
  SHRINK_REQUIRE_ASSET(bin, "models/teacher-9M/llama2c/model.bin");
  const ModelFile hf = load_hf(hf_dir);
  const ModelFile l2c = load_llama2c(bin);
  EXPECT_EQ(hf.config.dim, 256);
  EXPECT_EQ(hf.config.n_layers, 8);
  EXPECT_EQ(hf.config.n_heads, 8);
  EXPECT_EQ(hf.config.hidden_dim, 768);
  EXPECT_EQ(hf.config.vocab_size, 4096);
  EXPECT_FALSE(hf.config.tied_embeddings);
  EXPECT_EQ(hf.get("blk.0.attn_q.weight").dtype, DType::F32);
  expect_same_config(l2c.config, hf.config);
  expect_same_tensors(l2c.tensors, hf.tensors);
  // Not vacuous: the file's own q rows are in a different (rotate-half) order.
  const SafetensorsData raw = read_safetensors(hf_dir + "/model.safetensors");
  EXPECT_FALSE(same_bytes(raw.tensors.at("model.layers.0.self_attn.q_proj.weight"), l2c.get("blk.0.attn_q.weight")));
  EXPECT_TRUE(same_bytes(raw.tensors.at("model.layers.0.self_attn.v_proj.weight"), l2c.get("blk.0.attn_v.weight")));
  // And writing it back reproduces HF's own file byte for byte, tensor by tensor.
  const std::string out = test::temp_dir("hf_teacher_resave");
  save_hf(hf, out, DType::F32);
  const SafetensorsData a = read_safetensors(hf_dir + "/model.safetensors");
  const SafetensorsData b = read_safetensors(out + "/model.safetensors");
  expect_same_tensors(a.tensors, b.tensors);
  EXPECT_TRUE(fs::exists(out + "/tokenizer.model"));
  EXPECT_NO_THROW(load_model(out));
}

}  // namespace
}  // namespace shrink
