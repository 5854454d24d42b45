// GGUF reader/writer: metadata and tensor round trips, whole-model round
// trips, malformed files (each must throw shrink::Error, never crash), and
// the real teacher-9M / ggml-vocab files from ../shared when present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "io/gguf.h"
#include "io/model_file.h"
#include "test_util.h"

namespace shrink {
namespace {

// ------------------------------------------------------------------ helpers

using test::Bytes;

using test::write_bytes;

std::string read_bytes(const std::string& path) { return read_text_file(path); }

// Expects read_gguf to throw shrink::Error whose message names the file and contains `needle`.
void expect_gguf_error(const std::string& dir, const std::string& bytes, const std::string& needle) {
  const std::string path = dir + "/bad.gguf";
  write_bytes(path, bytes);
  try {
    read_gguf(path);
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

Tensor random_tensor(DType dt, std::vector<int64_t> shape, std::mt19937& rng, float scale = 0.1f) {
  Tensor f = Tensor::alloc(DType::F32, shape);
  std::normal_distribution<float> nd(0.0f, scale);
  for (int64_t i = 0; i < f.numel(); ++i) f.f32()[i] = nd(rng);
  return dt == DType::F32 ? f : f.to(dt);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

// An SPM vocabulary: <unk> <s> </s>, 256 byte tokens, a few words.
Vocab tiny_spm_vocab() {
  Vocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {kTokenUnknown, kTokenControl, kTokenControl};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.tokens.push_back(buf);
    v.types.push_back(kTokenByte);
  }
  for (const char* w : {"\xe2\x96\x81", "\xe2\x96\x81the", "\xe2\x96\x81" "a", "he", "th", "t", "h", "e", "a"}) {
    v.tokens.push_back(w);
    v.types.push_back(kTokenNormal);
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) v.scores.push_back(i < 259 ? 0.0f : -static_cast<float>(i));
  v.unk_id = 0, v.bos_id = 1, v.eos_id = 2;
  return v;
}

// A random model with every tensor check_model_tensors() expects.
ModelFile tiny_model(const ModelConfig& cfg, uint32_t seed) {
  std::mt19937 rng(seed);
  ModelFile m;
  m.config = cfg;
  m.config.validate("tiny");
  const ModelConfig& c = m.config;
  const int64_t d = c.dim, h = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim(), V = c.vocab_size;
  auto add = [&](const std::string& n, std::vector<int64_t> s) { m.tensors[n] = random_tensor(DType::F32, s, rng); };
  add("token_embd.weight", {V, d});
  add("output_norm.weight", {d});
  if (!c.tied_embeddings) add("output.weight", {V, d});
  if (c.arch == Arch::GPT2) {
    add("output_norm.bias", {d});
    add("position_embd.weight", {c.max_seq_len, d});
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {d});
    add(p + "ffn_norm.weight", {d});
    add(p + "attn_output.weight", {d, q});
    add(p + "ffn_up.weight", {h, d});
    add(p + "ffn_down.weight", {d, h});
    if (c.arch == Arch::GPT2) {
      add(p + "attn_qkv.weight", {q + 2 * kv, d});
      add(p + "attn_qkv.bias", {q + 2 * kv});
      for (auto n : {"attn_norm.bias", "ffn_norm.bias", "attn_output.bias", "ffn_down.bias"}) add(p + n, {d});
      add(p + "ffn_up.bias", {h});
      continue;
    }
    add(p + "attn_q.weight", {q, d});
    add(p + "attn_k.weight", {kv, d});
    add(p + "attn_v.weight", {kv, d});
    add(p + "ffn_gate.weight", {h, d});
    if (c.qkv_bias) {
      add(p + "attn_q.bias", {q});
      add(p + "attn_k.bias", {kv});
      add(p + "attn_v.bias", {kv});
    }
  }
  return m;
}

ModelConfig tiny_llama_config() {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.dim = 64, c.hidden_dim = 96, c.n_layers = 11, c.n_heads = 4, c.n_kv_heads = 2;
  c.vocab_size = 272, c.max_seq_len = 128, c.norm_eps = 1e-6f, c.rope_theta = 500000.0f, c.rope_scale = 2.0f;
  c.name = "tiny-llama";
  return c;
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  test::expect_same_shape(a, b);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scale, b.rope_scale);
  EXPECT_EQ(a.rope_style, b.rope_style);
  EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.name, b.name);
}

// A small valid file: a few KVs and dense tensors whose sizes are multiples of
// 32 bytes, so any truncation cuts into something the reader needs.
std::string valid_file(const std::string& dir) {
  std::mt19937 rng(7);
  const Tensor a = random_tensor(DType::F32, {16, 8}, rng), b = random_tensor(DType::F16, {4, 32}, rng);
  const std::string path = dir + "/valid.gguf";
  write_gguf(path,
             {{"general.architecture", GgufValue("llama")},
              {"general.alignment", GgufValue(uint32_t{32})},
              {"test.list", gguf_strings({"x", "yy", "zzz"})}},
             {{"a", {8, 16}, ggml_type::F32, a.data}, {"b", {32, 4}, ggml_type::F16, b.data}});
  return path;
}

// ------------------------------------------------------------------ metadata and tensors

TEST(GgufFormat, EveryMetadataTypeRoundTrips) {
  const std::string dir = test::temp_dir("gguf_meta");
  const GgufValue nested = gguf_array(
      GgufType::Array, {gguf_array(GgufType::I32, {int32_t{1}, int32_t{-2}}), gguf_array(GgufType::I32, {}),
                        gguf_array(GgufType::I32, {int32_t{3}})});
  const GgufValue deep = gguf_array(GgufType::Array, {gguf_array(GgufType::Array, {gguf_strings({"a", ""})})});
  const std::vector<GgufKV> kv = {
      {"t.u8", GgufValue(uint8_t{255})},
      {"t.i8", GgufValue(int8_t{-128})},
      {"t.u16", GgufValue(uint16_t{65535})},
      {"t.i16", GgufValue(int16_t{-32768})},
      {"t.u32", GgufValue(uint32_t{4294967295u})},
      {"t.i32", GgufValue(int32_t{-2147483647 - 1})},
      {"t.f32", GgufValue(3.25f)},
      {"t.bool_true", GgufValue(true)},
      {"t.bool_false", GgufValue(false)},
      {"t.string", GgufValue("h\xc3\xa9llo \xe2\x96\x81 world")},
      {"t.empty_string", GgufValue("")},
      {"t.u64", GgufValue(uint64_t{18446744073709551615ull})},
      {"t.i64", GgufValue(int64_t{std::numeric_limits<int64_t>::min()})},
      {"t.f64", GgufValue(-1.0e300)},
      {"t.arr_f32", gguf_f32s({1.5f, -0.0f, 1e-30f})},
      {"t.arr_str", gguf_strings({"a", "", "\xe4\xbd\xa0"})},
      {"t.arr_bool", gguf_array(GgufType::Bool, {true, false, true})},
      {"t.arr_u64", gguf_array(GgufType::U64, {uint64_t{1}, uint64_t{1} << 63})},
      {"t.arr_empty", gguf_array(GgufType::F64, {})},
      {"t.nested", nested},
      {"t.deep", deep},
  };
  const std::string path = dir + "/meta.gguf";
  write_gguf(path, kv, {});
  const GgufFile g = read_gguf(path);
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.alignment, 32u);
  ASSERT_EQ(g.kv.size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(g.kv[i].key, kv[i].key);
    EXPECT_EQ(g.kv[i].value.type(), kv[i].value.type()) << kv[i].key;
    EXPECT_TRUE(g.kv[i].value == kv[i].value) << kv[i].key;
  }
  EXPECT_EQ(g.get("t.u32").as_int("x"), 4294967295LL);
  EXPECT_EQ(g.get("t.i8").as_int("x"), -128);
  EXPECT_THROW(g.get("t.u64").as_int("x"), Error);  // does not fit int64
  EXPECT_THROW(g.get("t.string").as_int("x"), Error);
  EXPECT_THROW(g.get("no.such.key"), Error);
  EXPECT_THROW(gguf_array(GgufType::I32, {GgufValue(1.0f)}), Error);
}

TEST(GgufFormat, DenseTensorsRoundTripByteIdentical) {
  const std::string dir = test::temp_dir("gguf_dense");
  std::mt19937 rng(1);
  const Tensor f32 = random_tensor(DType::F32, {3, 5, 7}, rng);
  const Tensor f16 = random_tensor(DType::F16, {2, 3, 4, 9}, rng);
  const Tensor bf16 = random_tensor(DType::BF16, {33}, rng);
  const Tensor q8 = random_tensor(DType::Q8_0, {3, 64}, rng);
  for (uint32_t align : {32u, 64u, 8u}) {
    const std::string path = dir + "/t" + std::to_string(align) + ".gguf";
    write_gguf(path, {{"general.alignment", GgufValue(align)}},
               {{"f32", {7, 5, 3}, ggml_type::F32, f32.data},
                {"f16", {9, 4, 3, 2}, ggml_type::F16, f16.data},
                {"bf16", {33}, ggml_type::BF16, bf16.data},
                {"q8", {64, 3}, ggml_type::Q8_0, q8.data}});
    const GgufFile g = read_gguf(path);
    EXPECT_EQ(g.alignment, align);
    EXPECT_EQ(g.data_offset % align, 0u);
    ASSERT_EQ(g.tensors.size(), 4u);
    const Tensor* src[] = {&f32, &f16, &bf16, &q8};
    for (size_t i = 0; i < 4; ++i) {
      const GgufTensorInfo& t = g.tensors[i];
      EXPECT_EQ(t.offset % align, 0u) << t.name;
      ASSERT_EQ(t.nbytes, static_cast<uint64_t>(src[i]->nbytes())) << t.name;
      EXPECT_EQ(std::memcmp(g.tensor_data(t), src[i]->data, t.nbytes), 0) << t.name;
    }
    EXPECT_EQ(g.tensors[1].ne, (std::vector<uint64_t>{9, 4, 3, 2}));
  }
}

TEST(GgufFormat, WriterRejectsBadInput) {
  const std::string dir = test::temp_dir("gguf_wbad");
  float x[32] = {};
  EXPECT_THROW(write_gguf(dir + "/a.gguf", {{"k", GgufValue(1)}, {"k", GgufValue(2)}}, {}), Error);
  EXPECT_THROW(write_gguf(dir + "/a.gguf", {{"general.alignment", GgufValue(uint32_t{48})}}, {}), Error);
  EXPECT_THROW(write_gguf(dir + "/a.gguf", {}, {{std::string(64, 'n'), {32}, ggml_type::F32, x}}), Error);
  EXPECT_THROW(write_gguf(dir + "/a.gguf", {}, {{"t", {1, 1, 1, 1, 32}, ggml_type::F32, x}}), Error);
  EXPECT_THROW(write_gguf(dir + "/a.gguf", {}, {{"t", {31}, ggml_type::Q8_0, x}}), Error);
  EXPECT_THROW(write_gguf(dir + "/a.gguf", {}, {{"t", {32}, 99, x}}), Error);
  EXPECT_THROW(write_gguf(dir + "/a.gguf", {}, {{"t", {32}, ggml_type::F32, x}, {"t", {32}, ggml_type::F32, x}}),
               Error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/a.gguf"));  // atomic: nothing left behind
}

// ------------------------------------------------------------------ malformed files

TEST(GgufMalformed, TruncatedAnywhereThrows) {
  const std::string dir = test::temp_dir("gguf_trunc");
  const std::string full = read_bytes(valid_file(dir));
  ASSERT_NO_THROW(read_gguf(dir + "/valid.gguf"));
  for (size_t k = 0; k < 50; ++k) {
    const size_t cut = full.size() * k / 50;
    write_bytes(dir + "/cut.gguf", full.substr(0, cut));
    EXPECT_THROW(read_gguf(dir + "/cut.gguf"), Error) << "cut at " << cut << " of " << full.size();
  }
  for (size_t cut = 0; cut < 200; ++cut) {  // every byte of the header and metadata
    write_bytes(dir + "/cut.gguf", full.substr(0, cut));
    EXPECT_THROW(read_gguf(dir + "/cut.gguf"), Error) << "cut at " << cut;
  }
}

TEST(GgufMalformed, TruncatedModelThrows) {
  const std::string dir = test::temp_dir("gguf_trunc_model");
  ModelConfig c = tiny_llama_config();
  c.n_layers = 2;
  ModelFile m = tiny_model(c, 3);
  save_gguf_model(m, dir + "/m.gguf");
  const std::string full = read_bytes(dir + "/m.gguf");
  for (size_t k = 0; k < 50; ++k) {
    write_bytes(dir + "/cut.gguf", full.substr(0, full.size() * k / 50));
    EXPECT_THROW(load_gguf_model(dir + "/cut.gguf"), Error) << "k " << k;
  }
}

// Random byte corruption of a whole model file: every outcome is a clean load
// or a shrink::Error (anything else — another exception, a crash — fails).
TEST(GgufMalformed, RandomCorruptionNeverCrashes) {
  const std::string dir = test::temp_dir("gguf_fuzz");
  ModelConfig c = tiny_llama_config();
  c.n_layers = 1, c.vocab_size = 268;
  ModelFile m = tiny_model(c, 4);
  m.tokenizer = make_tokenizer(tiny_spm_vocab());
  save_gguf_model(m, dir + "/m.gguf");
  const std::string full = read_bytes(dir + "/m.gguf");
  const size_t meta_end = read_gguf(dir + "/m.gguf").data_offset;
  std::mt19937 rng(99);
  int errors = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string b = full;
    const int flips = 1 + iter % 4;
    for (int f = 0; f < flips; ++f) {
      const size_t at = std::uniform_int_distribution<size_t>(0, meta_end - 1)(rng);
      b[at] = static_cast<char>(iter % 3 == 0 ? 0xff : rng());
    }
    write_bytes(dir + "/f.gguf", b);
    try {
      load_gguf_model(dir + "/f.gguf");
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(GgufMalformed, HeaderProblems) {
  const std::string dir = test::temp_dir("gguf_hdr");
  expect_gguf_error(dir, "", "bad magic");
  expect_gguf_error(dir, "GGML\x03\0\0\0", "bad magic");
  expect_gguf_error(dir, Bytes().header(0, 0, 1).b, "unsupported GGUF version 1");
  expect_gguf_error(dir, Bytes().header(0, 0, 4).b, "unsupported GGUF version 4");
  expect_gguf_error(dir, Bytes().header(0, 0, 0x03000000).b, "big-endian");
  expect_gguf_error(dir, Bytes().header(0, uint64_t{1} << 60).b, "metadata count");
  expect_gguf_error(dir, Bytes().header(uint64_t{1} << 60, 0).b, "tensor count");
  write_bytes(dir + "/v2.gguf", Bytes().header(0, 0, 2).b);
  EXPECT_NO_THROW(read_gguf(dir + "/v2.gguf"));
}

TEST(GgufMalformed, MetadataProblems) {
  const std::string dir = test::temp_dir("gguf_kv");
  // A zero tail keeps the KV-count bound (>= 13 bytes per KV) from tripping first.
  auto z = [](const Bytes& b) { return b.b + std::string(64, '\0'); };
  expect_gguf_error(dir, z(Bytes().header(0, 1).u64(uint64_t{1} << 62)), "metadata key length");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("k").u32(8).u64(1000)), "truncated");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("k").u32(8).u64(~uint64_t{0})), "string length");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("k").u32(9).u32(0).u64(uint64_t{1} << 60)), "array length");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(uint64_t{1} << 40)), "array length");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("k").u32(13)), "invalid metadata value type 13");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("k").u32(9).u32(77).u64(0)), "invalid array element type");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("k").u32(7).put(uint8_t{2})), "invalid bool");
  expect_gguf_error(dir, z(Bytes().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2)), "duplicate metadata");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("general.alignment").u32(4).u32(48)), "power of two");
  expect_gguf_error(dir, z(Bytes().header(0, 1).str("general.alignment").u32(8).str("32")), "general.alignment");
  Bytes deep;
  deep.header(0, 1).str("k").u32(9);
  for (int i = 0; i < 20; ++i) deep.u32(9).u64(1);
  deep.u32(4).u64(0);
  expect_gguf_error(dir, z(deep), "nested deeper");
}

// One tensor info (after a header with no KVs) with the given fields, then data.
std::string one_tensor(uint32_t n_dims, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data) {
  Bytes f;
  f.header(1, 0).str("w").u32(n_dims);
  for (uint64_t d : ne) f.u64(d);
  f.u32(type).u64(offset).pad();
  f.b.append(data, '\0');
  return f.b;
}

TEST(GgufMalformed, TensorInfoProblems) {
  const std::string dir = test::temp_dir("gguf_ti");
  write_bytes(dir + "/ok.gguf", one_tensor(2, {8, 4}, ggml_type::F32, 0, 128));
  EXPECT_NO_THROW(read_gguf(dir + "/ok.gguf"));
  expect_gguf_error(dir, one_tensor(5, {1, 1, 1, 1, 8}, ggml_type::F32, 0, 32), "5 dimensions");
  expect_gguf_error(dir, one_tensor(0, {}, ggml_type::F32, 0, 32), "0 dimensions");
  expect_gguf_error(dir, one_tensor(2, {8, 4}, 99, 0, 128), "unknown tensor type 99");
  expect_gguf_error(dir, one_tensor(2, {8, 4}, ggml_type::F32, 0, 127), "past the end");
  expect_gguf_error(dir, one_tensor(2, {8, 4}, ggml_type::F32, uint64_t{1} << 40, 128), "past the end");
  expect_gguf_error(dir, one_tensor(2, {8, 4}, ggml_type::F32, ~uint64_t{0} - 31, 128), "");
  expect_gguf_error(dir, one_tensor(2, {8, 4}, ggml_type::F32, 4, 256), "not a multiple of the alignment");
  expect_gguf_error(dir, one_tensor(2, {uint64_t{1} << 40, uint64_t{1} << 40}, ggml_type::F32, 0, 32), "overflows");
  expect_gguf_error(dir, one_tensor(1, {~uint64_t{0}}, ggml_type::F32, 0, 32), "overflows");
  expect_gguf_error(dir, one_tensor(1, {48}, ggml_type::Q8_0, 0, 64), "block size");
  // Two tensors sharing bytes, and a duplicate name.
  auto two = [](const char* n2, uint64_t off2) {
    Bytes f;
    f.header(2, 0).str("a").u32(1).u64(16).u32(ggml_type::F32).u64(0);
    f.str(n2).u32(1).u64(16).u32(ggml_type::F32).u64(off2).pad();
    f.b.append(256, '\0');
    return f.b;
  };
  expect_gguf_error(dir, two("b", 32), "overlap");
  expect_gguf_error(dir, two("a", 64), "duplicate tensor");
  write_bytes(dir + "/ok2.gguf", two("b", 64));
  EXPECT_NO_THROW(read_gguf(dir + "/ok2.gguf"));
  // A bad huge name length in a tensor info.
  expect_gguf_error(dir, Bytes().header(1, 0).u64(uint64_t{1} << 50).b + std::string(64, '\0'), "tensor name length");
}

TEST(GgufMalformed, ModelLevelProblems) {
  const std::string dir = test::temp_dir("gguf_model_bad");
  float w[64] = {};
  write_gguf(dir + "/arch.gguf", {{"general.architecture", GgufValue("mamba")}}, {});
  try {
    load_gguf_model(dir + "/arch.gguf");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported architecture 'mamba' (supported: llama, qwen2, gpt2)"),
              std::string::npos)
        << e.what();
  }
  // A valid llama whose one tensor is Q4_K: the error names the tensor and the supported types.
  ModelConfig c = tiny_llama_config();
  c.n_layers = 1;
  save_gguf_model(tiny_model(c, 5), dir + "/m.gguf");
  GgufFile g = read_gguf(dir + "/m.gguf");
  std::vector<GgufTensorOut> outs;
  for (const auto& t : g.tensors) outs.push_back({t.name, t.ne, t.type, g.tensor_data(t)});
  for (auto& o : outs)
    if (o.name == "blk.0.ffn_up.weight") o.type = 16, o.ne = {256, 4};  // IQ2_XXS (unreadable): 264 bytes < f32 size
  write_gguf(dir + "/q4k.gguf", g.kv, outs);
  try {
    load_gguf_model(dir + "/q4k.gguf");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'blk.0.ffn_up.weight' has unsupported type IQ2_XXS (supported: F32"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load_gguf_vocab(dir + "/arch.gguf"), Error);  // no tokenizer metadata
  write_gguf(dir + "/w.gguf", {{"general.architecture", GgufValue("llama")}}, {{"w", {64}, ggml_type::F32, w}});
  EXPECT_THROW(load_gguf_model(dir + "/w.gguf"), Error);  // required llama keys missing
}

// ------------------------------------------------------------------ whole models

TEST(GgufModel, LlamaRoundTrip) {
  const std::string dir = test::temp_dir("gguf_llama");
  ModelFile m = tiny_model(tiny_llama_config(), 11);
  Vocab v = tiny_spm_vocab();  // 268 tokens: padded to the model's 272 on save
  v.pad_id = 5;
  v.add_space_prefix = false;
  m.tokenizer = make_tokenizer(v);
  // Several dtypes: every one comes back bit-identical (block tensors stay in their blocks).
  m.tensors["blk.0.attn_q.weight"] = m.tensors["blk.0.attn_q.weight"].to(DType::F16);
  m.tensors["blk.1.attn_k.weight"] = m.tensors["blk.1.attn_k.weight"].to(DType::BF16);
  m.tensors["blk.2.ffn_up.weight"] = m.tensors["blk.2.ffn_up.weight"].to(DType::Q8_0);
  m.tensors["blk.3.ffn_down.weight"] = m.tensors["blk.3.ffn_down.weight"].to(DType::Q4_0);
  save_gguf_model(m, dir + "/m.gguf");

  const ModelFile r = load_gguf_model(dir + "/m.gguf");
  EXPECT_EQ(r.format, "gguf");
  expect_same_config(r.config, m.config);
  ASSERT_EQ(r.tensors.size(), m.tensors.size());
  for (const auto& [name, t] : m.tensors) {
    const Tensor& u = r.get(name);
    EXPECT_EQ(u.dtype, t.dtype) << name;
    EXPECT_TRUE(same_bytes(u, t)) << name;
  }
  ASSERT_TRUE(r.tokenizer);
  const Vocab& rv = r.tokenizer->vocab();
  ASSERT_EQ(rv.tokens.size(), 272u);
  EXPECT_EQ(std::vector<std::string>(rv.tokens.begin(), rv.tokens.begin() + 268), v.tokens);
  EXPECT_EQ(rv.tokens[270], "[PAD270]");
  EXPECT_EQ(rv.types[271], kTokenUnused);
  EXPECT_EQ(std::vector<float>(rv.scores.begin(), rv.scores.begin() + 268), v.scores);
  EXPECT_EQ(std::vector<int32_t>(rv.types.begin(), rv.types.begin() + 268), v.types);
  EXPECT_EQ(rv.model, "llama");
  EXPECT_EQ(rv.bos_id, 1);
  EXPECT_EQ(rv.eos_id, 2);
  EXPECT_EQ(rv.unk_id, 0);
  EXPECT_EQ(rv.pad_id, 5);
  EXPECT_TRUE(rv.add_bos);
  EXPECT_FALSE(rv.add_space_prefix);
  EXPECT_EQ(r.tokenizer->encode("the a", true), m.tokenizer->encode("the a", true));
}

TEST(GgufModel, WrittenLayoutMatchesLlamaCpp) {
  const std::string dir = test::temp_dir("gguf_layout");
  ModelFile m = tiny_model(tiny_llama_config(), 12);
  save_gguf_model(m, dir + "/m.gguf");
  const GgufFile g = read_gguf(dir + "/m.gguf");
  EXPECT_EQ(g.get("general.architecture").as_string(""), "llama");
  EXPECT_EQ(g.get("general.alignment").type(), GgufType::U32);
  EXPECT_EQ(g.get("general.file_type").as_int(""), 0);
  EXPECT_EQ(g.find("general.quantization_version"), nullptr);
  EXPECT_EQ(g.get("llama.attention.head_count_kv").as_int(""), 2);
  EXPECT_EQ(g.get("llama.rope.dimension_count").as_int(""), 16);
  EXPECT_EQ(g.get("llama.rope.scaling.type").as_string(""), "linear");
  EXPECT_EQ(g.get("llama.rope.scaling.factor").type(), GgufType::F32);
  EXPECT_EQ(g.get("llama.attention.layer_norm_rms_epsilon").type(), GgufType::F32);
  for (const char* k : {"llama.context_length", "llama.embedding_length", "llama.block_count",
                        "llama.feed_forward_length", "llama.attention.head_count"})
    EXPECT_EQ(g.get(k).type(), GgufType::U32) << k;
  EXPECT_EQ(g.get("tokenizer.ggml.model").as_string(""), "no_vocab");  // no tokenizer in this model
  // Order: top-level tensors, then blocks numerically; dims innermost-first.
  ASSERT_GE(g.tensors.size(), 4u);
  EXPECT_EQ(g.tensors[0].name, "token_embd.weight");
  EXPECT_EQ(g.tensors[0].ne, (std::vector<uint64_t>{64, 272}));
  EXPECT_EQ(g.tensors[1].name, "output_norm.weight");
  EXPECT_EQ(g.tensors[2].name, "output.weight");
  int last_layer = -1;
  for (size_t i = 3; i < g.tensors.size(); ++i) {
    const int layer = std::stoi(g.tensors[i].name.substr(4));
    EXPECT_GE(layer, last_layer) << g.tensors[i].name;
    last_layer = layer;
  }
  EXPECT_EQ(g.find_tensor("blk.0.ffn_down.weight")->ne, (std::vector<uint64_t>{96, 64}));
  // Contiguous aligned layout in info order, as ggml's loader requires.
  uint64_t expect = 0;
  for (const auto& t : g.tensors) {
    EXPECT_EQ(t.offset, expect) << t.name;
    expect += (t.nbytes + 31) / 32 * 32;
  }
  // file_type follows the dominant matrix dtype.
  for (auto& [name, t] : m.tensors)
    if (t.ndim() == 2) t = t.to(DType::Q8_0);
  save_gguf_model(m, dir + "/q8.gguf");
  const GgufFile q = read_gguf(dir + "/q8.gguf");
  EXPECT_EQ(q.get("general.file_type").as_int(""), 7);
  EXPECT_EQ(q.get("general.quantization_version").as_int(""), 2);
}

TEST(GgufModel, Gpt2RoundTripWithoutTokenizer) {
  const std::string dir = test::temp_dir("gguf_gpt2");
  ModelConfig c;
  c.arch = Arch::GPT2;
  c.dim = 32, c.hidden_dim = 128, c.n_layers = 2, c.n_heads = 4, c.vocab_size = 100, c.max_seq_len = 16;
  c.tied_embeddings = true;
  const ModelFile m = tiny_model(c, 21);
  save_gguf_model(m, dir + "/g.gguf");
  const ModelFile r = load_gguf_model(dir + "/g.gguf");
  expect_same_config(r.config, m.config);
  EXPECT_FALSE(r.tokenizer);
  for (const auto& [name, t] : m.tensors) EXPECT_TRUE(same_bytes(r.get(name), t)) << name;
  EXPECT_EQ(read_gguf(dir + "/g.gguf").tensors[1].name, "position_embd.weight");
  EXPECT_THROW(load_gguf_vocab(dir + "/g.gguf"), Error);
}

TEST(GgufModel, Qwen2RoundTripKeepsNeoxOrder) {
  const std::string dir = test::temp_dir("gguf_qwen2");
  ModelConfig c = tiny_llama_config();
  c.n_layers = 2, c.qkv_bias = true, c.rope_style = RopeStyle::Neox, c.rope_scale = 1.0f;
  const ModelFile m = tiny_model(c, 31);
  save_gguf_model(m, dir + "/q.gguf");
  EXPECT_EQ(read_gguf(dir + "/q.gguf").get("general.architecture").as_string(""), "qwen2");
  const ModelFile r = load_gguf_model(dir + "/q.gguf");
  expect_same_config(r.config, m.config);
  for (const auto& [name, t] : m.tensors) EXPECT_TRUE(same_bytes(r.get(name), t)) << name;
}

TEST(GgufModel, NeoxLlamaIsWrittenInterleaved) {
  // llama GGUFs rotate pairs (2i, 2i+1): a NeoX-ordered llama must have its q/k rows permuted.
  const std::string dir = test::temp_dir("gguf_neox");
  ModelConfig c = tiny_llama_config();
  c.n_layers = 1, c.rope_style = RopeStyle::Neox;
  const ModelFile m = tiny_model(c, 41);
  save_gguf_model(m, dir + "/n.gguf");
  const ModelFile r = load_gguf_model(dir + "/n.gguf");
  EXPECT_EQ(r.config.rope_style, RopeStyle::Interleaved);
  const int hd = r.config.head_dim;
  for (const char* name : {"blk.0.attn_q.weight", "blk.0.attn_k.weight"}) {
    const Tensor &a = m.get(name), &b = r.get(name);
    const int64_t cols = a.cols();
    for (int64_t row = 0; row < a.rows(); ++row) {
      const int64_t h = row / hd, j = row % hd;
      const int64_t src = h * hd + (j % 2 == 0 ? j / 2 : hd / 2 + j / 2);
      EXPECT_EQ(std::memcmp(b.f32() + row * cols, a.f32() + src * cols, cols * 4), 0) << name << " row " << row;
    }
  }
  EXPECT_TRUE(same_bytes(r.get("blk.0.attn_v.weight"), m.get("blk.0.attn_v.weight")));
  // Writing the interleaved result as qwen2 (bias on) permutes back to NeoX.
  ModelFile r2 = r;
  r2.config.qkv_bias = true;
  for (const char* n : {"attn_q", "attn_k", "attn_v"})
    r2.tensors[std::string("blk.0.") + n + ".bias"] =
        Tensor::zeros(DType::F32, {std::string(n) == "attn_q" ? r.config.q_dim() : r.config.kv_dim()});
  save_gguf_model(r2, dir + "/q.gguf");
  const ModelFile back = load_gguf_model(dir + "/q.gguf");
  EXPECT_EQ(back.config.rope_style, RopeStyle::Neox);
  EXPECT_TRUE(same_bytes(back.get("blk.0.attn_q.weight"), m.get("blk.0.attn_q.weight")));
  EXPECT_TRUE(same_bytes(back.get("blk.0.attn_k.weight"), m.get("blk.0.attn_k.weight")));
}

// ------------------------------------------------------------------ real files

const char* kTeacher = "models/teacher-9M/gguf/model-f32.gguf";

TEST(GgufReal, TeacherF32Config) {
  SHRINK_REQUIRE_ASSET(path, kTeacher);
  const ModelFile m = load_gguf_model(path);
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.dim, 256);
  EXPECT_EQ(c.n_layers, 8);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.hidden_dim, 768);
  EXPECT_EQ(c.vocab_size, 4096);
  EXPECT_EQ(c.max_seq_len, 128);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.rope_style, RopeStyle::Interleaved);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(m.get("token_embd.weight").shape, (std::vector<int64_t>{4096, 256}));
  EXPECT_EQ(m.get("blk.0.ffn_down.weight").shape, (std::vector<int64_t>{256, 768}));
  ASSERT_TRUE(m.tokenizer);
  EXPECT_EQ(m.tokenizer->vocab_size(), 4096);
  EXPECT_EQ(m.tokenizer->vocab().tokens[1], "<s>");
  const ModelFile via_detect = load_model(path);  // format detection + checks
  EXPECT_EQ(via_detect.format, "gguf");
}

TEST(GgufReal, TeacherMatchesLlama2cBitForBit) {
  SHRINK_REQUIRE_ASSET(gguf, kTeacher);
  SHRINK_REQUIRE_ASSET(bin, "models/teacher-9M/llama2c/model.bin");
  const ModelFile a = load_gguf_model(gguf), b = load_llama2c(bin);
  // The two files disagree only on the training context (llama2.c header 256,
  // the GGUF converter's 128), so compare everything else.
  ModelConfig ca = a.config, cb = b.config;
  EXPECT_EQ(ca.max_seq_len, 128);
  ca.max_seq_len = cb.max_seq_len;
  EXPECT_EQ(ca.summary(), cb.summary());
  EXPECT_EQ(ca.norm_eps, cb.norm_eps);
  EXPECT_EQ(ca.rope_theta, cb.rope_theta);
  EXPECT_EQ(ca.rope_style, cb.rope_style);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : b.tensors) {
    const Tensor* u = a.find(name);
    ASSERT_TRUE(u) << name;
    EXPECT_TRUE(same_bytes(*u, t)) << name << " " << shape_str(u->shape) << " vs " << shape_str(t.shape);
  }
}

// Max |a - b| over a tensor, and max |a|.
std::pair<float, float> max_diff(const Tensor& a, const Tensor& b) {
  float d = 0, m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    d = std::max(d, std::fabs(a.f32()[i] - b.f32()[i]));
    m = std::max(m, std::fabs(a.f32()[i]));
  }
  return {d, m};
}

TEST(GgufReal, TeacherQ8_0CloseToF32) {
  SHRINK_REQUIRE_ASSET(f32, kTeacher);
  SHRINK_REQUIRE_ASSET(q8, "models/teacher-9M/gguf/model-q8_0.gguf");
  const ModelFile a = load_gguf_model(f32), b = load_gguf_model(q8);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    // Block-quantized tensors load as their blocks; compare their values.
    const Tensor u = b.get(name).to(DType::F32);
    ASSERT_EQ(u.shape, t.shape) << name;
    const auto [d, m] = max_diff(t, u);
    EXPECT_LE(d, m / 100.0f) << name;  // Q8_0: at most half a step of amax/127 per block
  }
}

TEST(GgufReal, TeacherQ4_0CloseToF32) {
  SHRINK_REQUIRE_ASSET(f32, kTeacher);
  SHRINK_REQUIRE_ASSET(q4, "models/teacher-9M/gguf/model-q4_0.gguf");
  // llama.cpp keeps output.weight in Q6_K: the file mixes block types and loads whole.
  const ModelFile a = load_gguf_model(f32), b = load_gguf_model(q4);
  const GgufFile g = read_gguf(q4);
  int checked = 0;
  for (const auto& info : g.tensors) {
    const Tensor& t = a.get(info.name);
    EXPECT_EQ(parse_dtype(ggml_type_name(info.type)), b.get(info.name).dtype) << info.name;
    const Tensor u = b.get(info.name).to(DType::F32);
    ASSERT_EQ(u.shape, t.shape) << info.name;
    const auto [d, m] = max_diff(t, u);
    if (info.type == ggml_type::Q4_0) {
      EXPECT_LE(d, m / 6.0f) << info.name;  // Q4_0 step is amax/8 per block
      ++checked;
    } else if (info.type == ggml_type::Q6_K) {
      EXPECT_EQ(info.name, "output.weight");
      EXPECT_LE(d, m / 40.0f) << info.name;  // 6 bits: step ~amax/32 per 16 values
    } else {
      EXPECT_EQ(info.type, ggml_type::F32) << info.name;
      EXPECT_EQ(d, 0.0f) << info.name;
    }
  }
  EXPECT_EQ(checked, 1 + 8 * 7);  // token_embd and the 7 matrices of each layer
}

TEST(GgufReal, TeacherResaveKeepsLayoutAndTypes) {
  SHRINK_REQUIRE_ASSET(path, kTeacher);
  const std::string dir = test::temp_dir("gguf_resave");
  save_gguf_model(load_gguf_model(path), dir + "/re.gguf");
  const GgufFile orig = read_gguf(path), ours = read_gguf(dir + "/re.gguf");
  // Every key llama.cpp read from the original is present with the same type and value.
  for (const auto& e : orig.kv) {
    if (e.key == "tokenizer.ggml.seperator_token_id" || e.key == "tokenizer.ggml.padding_token_id") continue;
    const GgufValue* v = ours.find(e.key);
    ASSERT_TRUE(v) << e.key;
    EXPECT_TRUE(*v == e.value) << e.key;
  }
  ASSERT_EQ(ours.tensors.size(), orig.tensors.size());
  for (const auto& t : orig.tensors) {
    const GgufTensorInfo* u = ours.find_tensor(t.name);
    ASSERT_TRUE(u) << t.name;
    EXPECT_EQ(u->ne, t.ne) << t.name;
    EXPECT_EQ(u->type, t.type) << t.name;
    EXPECT_EQ(std::memcmp(ours.tensor_data(*u), orig.tensor_data(t), t.nbytes), 0) << t.name;
  }
}

TEST(GgufReal, LlamaSpmVocab) {
  SHRINK_REQUIRE_ASSET(path, "tokenizers/ggml-vocab/ggml-vocab-llama-spm.gguf");
  const Vocab v = load_gguf_vocab(path);
  EXPECT_EQ(v.model, "llama");
  ASSERT_EQ(v.tokens.size(), 32000u);
  EXPECT_EQ(v.scores.size(), 32000u);
  EXPECT_EQ(v.types.size(), 32000u);
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.tokens[13], "<0x0A>");
  EXPECT_EQ(v.types[13], kTokenByte);
  EXPECT_EQ(v.tokens[278], "\xe2\x96\x81the");
  EXPECT_EQ(v.tokens[29889], ".");
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.merges.empty());
}

TEST(GgufReal, Gpt2Vocab) {
  SHRINK_REQUIRE_ASSET(path, "tokenizers/ggml-vocab/ggml-vocab-gpt-2.gguf");
  const Vocab v = load_gguf_vocab(path);
  EXPECT_EQ(v.model, "gpt2");
  ASSERT_EQ(v.tokens.size(), 50257u);
  EXPECT_EQ(v.tokens[0], "!");
  EXPECT_EQ(v.tokens[262], "\xc4\xa0the");  // "Ġthe"
  EXPECT_EQ(v.tokens[50256], "<|endoftext|>");
  ASSERT_EQ(v.merges.size(), 50000u);
  EXPECT_EQ(v.merges[0], "\xc4\xa0 t");
  EXPECT_EQ(v.bos_id, 50256);
  EXPECT_EQ(v.eos_id, 50256);
  EXPECT_TRUE(v.scores.empty());
  EXPECT_FALSE(v.add_bos);
}

}  // namespace
}  // namespace shrink
