// llama.cpp importance-matrix files (io/imatrix.h): both formats round trip,
// hand-built legacy bytes read as llama.cpp writes them, the GGUF layout
// (keys, types, tensor names, shapes) is llama.cpp's, bad files throw
// shrink::Error naming the file, and `shrink imatrix` agrees with
// quant::collect_importance on a small random model.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "compress/calib/calib.h"
#include "compress/quant/quantize.h"
#include "core/error.h"
#include "core/file.h"
#include "io/gguf.h"
#include "io/imatrix.h"
#include "io/model_file.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_util.h"

namespace shrink {
namespace {

using test::Bytes;

using test::write_bytes;

// read_imatrix must throw shrink::Error naming the file and containing `needle`.
void expect_read_error(const std::string& path, const std::string& needle) {
  try {
    read_imatrix(path);
    ADD_FAILURE() << "no error for " << path << " (expected '" << needle << "')";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// Two dense entries (sums over 1000 tokens in chunks of 250) and one MoE entry
// with 2 experts, one of which saw no token.
ImportanceMatrix sample_matrix() {
  ImportanceMatrix m;
  m.datasets = {"calib-a.txt", "calib-b.txt"};
  m.chunk_size = 250;
  m.chunk_count = 4;
  m.entries["blk.0.attn_q.weight"] = {{1000.0f, 2500.5f, 0.0f, 12.25f}, {1000.0f}};
  m.entries["blk.0.ffn_down.weight"] = {{3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f}, {999.0f}};
  m.entries["blk.1.ffn_up_exps.weight"] = {{10.0f, 20.0f, 30.0f, 0.0f, 0.0f, 0.0f}, {40.0f, 0.0f}};
  return m;
}

// ------------------------------------------------------------------ formats

TEST(Imatrix, GgufRoundTrip) {
  const std::string dir = test::temp_dir("imx_gguf");
  const ImportanceMatrix m = sample_matrix();
  write_imatrix(m, dir + "/a.gguf");
  const ImportanceMatrix r = read_imatrix(dir + "/a.gguf");
  EXPECT_EQ(r.format, "gguf");
  EXPECT_EQ(r.entries, m.entries);
  EXPECT_EQ(r.datasets, m.datasets);
  EXPECT_EQ(r.chunk_count, 4);
  EXPECT_EQ(r.chunk_size, 250);
}

// The GGUF file as llama.cpp's save_imatrix writes it: general.type string,
// imatrix.datasets string array, chunk_count/chunk_size u32; tensors sorted by
// name, "<W>.in_sum2" then "<W>.counts", F32, 1-D for a dense weight
// (ggml_n_dims drops ne1 = 1) and {cols, n_mat} / {1, n_mat} for a MoE weight.
TEST(Imatrix, GgufLayoutAsLlamaCpp) {
  const std::string dir = test::temp_dir("imx_layout");
  write_imatrix_gguf(sample_matrix(), dir + "/a.gguf");
  const GgufFile g = read_gguf(dir + "/a.gguf");
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.get("general.type"), GgufValue("imatrix"));
  EXPECT_EQ(g.get("imatrix.datasets"), gguf_strings({"calib-a.txt", "calib-b.txt"}));
  EXPECT_EQ(g.get("imatrix.chunk_count"), GgufValue(uint32_t(4)));
  EXPECT_EQ(g.get("imatrix.chunk_size"), GgufValue(uint32_t(250)));
  const std::vector<std::pair<std::string, std::vector<uint64_t>>> want = {
      {"blk.0.attn_q.weight.in_sum2", {4}},        {"blk.0.attn_q.weight.counts", {1}},
      {"blk.0.ffn_down.weight.in_sum2", {6}},      {"blk.0.ffn_down.weight.counts", {1}},
      {"blk.1.ffn_up_exps.weight.in_sum2", {3, 2}}, {"blk.1.ffn_up_exps.weight.counts", {1, 2}}};
  ASSERT_EQ(g.tensors.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(g.tensors[i].name, want[i].first);
    EXPECT_EQ(g.tensors[i].ne, want[i].second) << want[i].first;
    EXPECT_EQ(g.tensors[i].type, ggml_type::F32);
  }
  float c;
  std::memcpy(&c, g.tensor_data(g.tensors[1]), 4);
  EXPECT_EQ(c, 1000.0f);
}

// A legacy file built byte by byte as save_imatrix_legacy writes it.
TEST(Imatrix, ReadsHandBuiltLegacyFile) {
  const std::string dir = test::temp_dir("imx_legacy_hand");
  Bytes b;
  b.i32(2);
  b.name("blk.0.attn_k.weight").i32(4).i32(3).f32(4.0f).f32(8.0f).f32(2.0f);  // ncall 4: means 1, 2, 0.5
  b.name("output.weight").i32(0).i32(2).f32(3.0f).f32(5.0f);               // ncall 0: values as they are
  b.i32(7).name("wiki.train.raw");                                          // last chunk, dataset
  write_bytes(dir + "/i.dat", b.b);
  const ImportanceMatrix m = read_imatrix(dir + "/i.dat");
  EXPECT_EQ(m.format, "legacy");
  ASSERT_EQ(m.entries.size(), 2u);
  EXPECT_EQ(m.chunk_count, 7);
  EXPECT_EQ(m.chunk_size, 0);
  EXPECT_EQ(m.datasets, std::vector<std::string>{"wiki.train.raw"});
  const ImatrixEntry& k = m.entries.at("blk.0.attn_k.weight");
  EXPECT_EQ(k.cols(), 3);
  EXPECT_EQ(imatrix_mean_sq(k), (std::vector<float>{1.0f, 2.0f, 0.5f}));
  EXPECT_EQ(imatrix_mean_sq(m.entries.at("output.weight")), (std::vector<float>{3.0f, 5.0f}));

  // The trailer is optional (files older than the dataset name).
  Bytes old;
  old.i32(1).name("blk.0.attn_k.weight").i32(2).i32(1).f32(6.0f);
  write_bytes(dir + "/old.dat", old.b);
  const ImportanceMatrix o = read_imatrix(dir + "/old.dat");
  EXPECT_EQ(imatrix_mean_sq(o.entries.at("blk.0.attn_k.weight")), std::vector<float>{3.0f});
  EXPECT_TRUE(o.datasets.empty());
}

// The bytes save_imatrix_legacy writes for the sample: entries sorted, the
// empty MoE expert stored as 1 (scaled by ncall), values = sum / count * ncall
// with ncall = ceil(max count / chunk_size), then last chunk and the last dataset.
TEST(Imatrix, LegacyWriterBytesAsLlamaCpp) {
  const std::string dir = test::temp_dir("imx_legacy_bytes");
  write_imatrix(sample_matrix(), dir + "/a.dat");
  Bytes b;
  b.i32(3);
  b.name("blk.0.attn_q.weight").i32(4).i32(4);
  for (float s : {1000.0f, 2500.5f, 0.0f, 12.25f}) b.f32(s / 1000.0f * 4.0f);
  b.name("blk.0.ffn_down.weight").i32(4).i32(6);  // ceil(999 / 250) = 4
  for (float s : {3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f}) b.f32(s / 999.0f * 4.0f);
  b.name("blk.1.ffn_up_exps.weight").i32(1).i32(6);  // ceil(40 / 250) = 1
  for (float s : {10.0f, 20.0f, 30.0f}) b.f32(s / 40.0f * 1.0f);
  for (int i = 0; i < 3; ++i) b.f32(1.0f);
  b.i32(4).name("calib-b.txt");
  EXPECT_EQ(read_text_file(dir + "/a.dat"), b.b);
}

TEST(Imatrix, LegacyRoundTrip) {
  const std::string dir = test::temp_dir("imx_legacy_rt");
  // From token counts: the means survive (to float rounding); counts become chunks.
  const ImportanceMatrix m = sample_matrix();
  write_imatrix_legacy(m, dir + "/a.dat");
  const ImportanceMatrix r = read_imatrix(dir + "/a.dat");
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.chunk_count, m.chunk_count);
  EXPECT_EQ(r.datasets, std::vector<std::string>{"calib-b.txt"});
  for (const auto& [name, e] : m.entries) {
    const std::vector<float> want = imatrix_mean_sq(e), got = imatrix_mean_sq(r.entries.at(name));
    ASSERT_EQ(got.size(), want.size()) << name;
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6 * want[i]) << name << i;
  }
  // A legacy file read and written again is the same bytes.
  write_imatrix_legacy(r, dir + "/b.dat");
  EXPECT_EQ(read_text_file(dir + "/b.dat"), read_text_file(dir + "/a.dat"));
  // ... and through GGUF and back too.
  write_imatrix_gguf(r, dir + "/c.gguf");
  write_imatrix_legacy(read_imatrix(dir + "/c.gguf"), dir + "/d.dat");
  EXPECT_EQ(read_text_file(dir + "/d.dat"), read_text_file(dir + "/a.dat"));
}

// llama-quantize's per-column importance: sum / count per matrix, 1 where a
// matrix saw nothing.
TEST(Imatrix, MeanIsSumOverCount) {
  const ImportanceMatrix m = sample_matrix();
  EXPECT_EQ(imatrix_mean_sq(m.entries.at("blk.0.attn_q.weight")),
            (std::vector<float>{1.0f, 2500.5f / 1000.0f, 0.0f, 12.25f / 1000.0f}));
  EXPECT_EQ(imatrix_mean_sq(m.entries.at("blk.1.ffn_up_exps.weight")),
            (std::vector<float>{0.25f, 0.5f, 0.75f, 1.0f, 1.0f, 1.0f}));
}

// ------------------------------------------------------------------ bad input

TEST(Imatrix, TruncatedLegacyFails) {
  const std::string dir = test::temp_dir("imx_trunc");
  write_imatrix_legacy(sample_matrix(), dir + "/full.dat");
  const std::string full = read_text_file(dir + "/full.dat");
  const std::string p = dir + "/t.dat";
  const size_t trailer = 4 + 4 + std::strlen("calib-b.txt");
  // Every cut inside the entries fails; a cut at the very start of the
  // optional trailer is a valid older file, and so is a file without the dataset.
  for (size_t cut = 0; cut < full.size(); ++cut) {
    if (cut == full.size() - trailer || cut == full.size() - trailer + 4) continue;
    write_bytes(p, full.substr(0, cut));
    EXPECT_THROW(read_imatrix(p), Error) << "cut at " << cut;
  }
  write_bytes(p, full.substr(0, 20));
  expect_read_error(p, "");
}

TEST(Imatrix, BadLegacyFieldsFail) {
  const std::string dir = test::temp_dir("imx_bad_legacy");
  const std::string p = dir + "/bad.dat";
  auto one = [](int32_t ncall, int32_t nval, float v) {
    Bytes b;
    b.i32(1).name("blk.0.attn_q.weight").i32(ncall).i32(nval);
    for (int32_t i = 0; i < std::max(nval, 0) && i < 4; ++i) b.f32(v);
    return b;
  };
  write_bytes(p, Bytes().i32(1 << 30).b + std::string(64, '\0'));
  expect_read_error(p, "entry count 1073741824");
  write_bytes(p, Bytes().i32(0).b);
  expect_read_error(p, "entry count 0");
  write_bytes(p, one(-3, 2, 1.0f).b);
  expect_read_error(p, "negative call count -3");
  write_bytes(p, one(1, 0, 1.0f).b);
  expect_read_error(p, "claims 0 values");
  write_bytes(p, one(1, 1 << 28, 1.0f).b);
  expect_read_error(p, "claims 268435456 values");
  write_bytes(p, one(1, 2, std::numeric_limits<float>::quiet_NaN()).b);
  expect_read_error(p, "value nan");
  write_bytes(p, one(1, 2, -1.0f).b);
  expect_read_error(p, "value -1");
  write_bytes(p, one(1, 2, 1.0f).i32(3).name("x").b + "junk");
  expect_read_error(p, "4 unexpected bytes");
  Bytes dup;
  dup.i32(2).name("w").i32(1).i32(1).f32(1).name("w").i32(1).i32(1).f32(1);
  write_bytes(p, dup.b);
  expect_read_error(p, "appears twice");
  Bytes neglen;
  neglen.i32(1).i32(-5).b += std::string(32, 'x');
  write_bytes(p, neglen.b);
  expect_read_error(p, "name length -5");
}

// GGUF files whose tensors disagree with the imatrix layout.
TEST(Imatrix, BadGgufFails) {
  const std::string dir = test::temp_dir("imx_bad_gguf");
  const std::string p = dir + "/bad.gguf";
  const std::vector<GgufKV> kv = {{"general.type", GgufValue("imatrix")}};
  const float sums[4] = {1, 2, 3, 4}, neg[1] = {-5}, two[2] = {10, 10}, nan[2] = {1, NAN};
  const uint16_t half[4] = {0, 0, 0, 0};
  auto expect = [&](const std::vector<GgufKV>& k, const std::vector<GgufTensorOut>& t, const std::string& needle) {
    write_gguf(p, k, t);
    expect_read_error(p, needle);
  };
  expect(kv, {{"w.in_sum2", {4}, ggml_type::F32, sums}, {"w.counts", {1}, ggml_type::F32, neg}}, "count -5");
  expect(kv, {{"w.in_sum2", {2}, ggml_type::F32, nan}, {"w.counts", {1}, ggml_type::F32, sums}}, "sum nan");
  expect(kv, {{"w.in_sum2", {4}, ggml_type::F32, sums}}, "no .counts");
  expect(kv, {{"w.counts", {1}, ggml_type::F32, sums}}, "no .in_sum2");
  expect(kv, {{"w.in_sum2", {4}, ggml_type::F32, sums}, {"w.counts", {2}, ggml_type::F32, two}}, "2 values for 1");
  expect(kv, {{"w.in_sum2", {2, 2}, ggml_type::F32, sums}, {"w.counts", {1}, ggml_type::F32, sums}},
         "1 values for 2");
  expect(kv, {{"w.in_sum2", {4}, ggml_type::F16, half}, {"w.counts", {1}, ggml_type::F32, sums}}, "must be F32");
  expect(kv, {{"w.in_sum2", {1, 2, 2}, ggml_type::F32, sums}, {"w.counts", {1}, ggml_type::F32, sums}},
         "more than 2 dimensions");
  // A model file given where an imatrix was expected.
  expect({{"general.type", GgufValue("model")}},
         {{"blk.0.attn_q.weight", {4}, ggml_type::F32, sums}}, "general.type is 'model'");
  expect({{"general.architecture", GgufValue("llama")}}, {{"token_embd.weight", {4}, ggml_type::F32, sums}},
         "not an importance matrix");
  expect({{"general.type", GgufValue("imatrix")}, {"imatrix.chunk_size", GgufValue(int32_t(-1))}},
         {{"w.in_sum2", {4}, ggml_type::F32, sums}, {"w.counts", {1}, ggml_type::F32, sums}},
         "imatrix.chunk_size is negative");
  // Truncation anywhere in a real one.
  write_imatrix_gguf(sample_matrix(), dir + "/full.gguf");
  const std::string full = read_text_file(dir + "/full.gguf");
  const GgufFile g = read_gguf(dir + "/full.gguf");
  const size_t data_end = g.data_offset + g.tensors.back().offset + g.tensors.back().nbytes;  // then padding
  for (size_t cut : {size_t(4), size_t(30), size_t(200), full.size() / 2, data_end - 1}) {
    write_bytes(p, full.substr(0, cut));
    EXPECT_THROW(read_imatrix(p), Error) << "cut at " << cut;
  }
}

TEST(Imatrix, WriteRejectsUnknownExtensionAndEmpty) {
  const std::string dir = test::temp_dir("imx_ext");
  EXPECT_THROW(write_imatrix(sample_matrix(), dir + "/a.bin"), Error);
  EXPECT_THROW(write_imatrix(ImportanceMatrix{}, dir + "/a.gguf"), Error);
  EXPECT_THROW(write_imatrix(ImportanceMatrix{}, dir + "/a.dat"), Error);
  EXPECT_FALSE(file_exists(dir + "/a.gguf"));
}

// ------------------------------------------------------------------ model

TEST(Imatrix, ForLinearsMapsNamesAndChecksColumns) {
  ImportanceMatrix m = sample_matrix();
  m.path = "x.gguf";
  std::vector<std::string> missing;
  const auto imp = imatrix_for_linears(m, {{"blk.0.attn_q", 4}, {"blk.0.ffn_down", 6}, {"output", 4}}, &missing);
  ASSERT_EQ(imp.size(), 2u);
  EXPECT_EQ(imp.at("blk.0.attn_q"), imatrix_mean_sq(m.entries.at("blk.0.attn_q.weight")));
  EXPECT_EQ(missing, std::vector<std::string>{"output"});
  EXPECT_EQ(imatrix_linear_name("blk.3.ffn_gate.weight"), "blk.3.ffn_gate");
  EXPECT_EQ(imatrix_linear_name("blk.3.ffn_gate"), "");
  try {
    imatrix_for_linears(m, {{"blk.0.attn_q", 8}});
    ADD_FAILURE() << "column mismatch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.gguf: 'blk.0.attn_q.weight' has 4 columns but the model's blk.0.attn_q "
                                         "has 8 inputs"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(imatrix_for_linears(m, {{"blk.1.ffn_up_exps", 3}}), Error);  // MoE
  EXPECT_THROW(imatrix_for_linears(m, {{"blk.9.attn_q", 4}}), Error);       // nothing matches
}

std::string sample_text() {
  std::string t;
  for (int i = 0; i < 60; ++i)
    t += "Once upon a time there was a little fox who liked to run in the woods near the river. ";
  return t;
}

// Written and read back, the importance equals collect_importance's on the
// same calibration set (the block linears; the head is left out).
TEST(Imatrix, MatchesCollectImportance) {
  const ModelFile f = random_model(preset_config("tiny"), DType::F32, 11);
  const calib::CalibSet calib = calib::make_calib_set(*f.tokenizer, sample_text(), 1024, 64);
  ASSERT_EQ(calib.tokens(), 1024);
  Transformer model(f);
  const auto imp = quant::collect_importance(model, calib);
  const ImportanceMatrix m = imatrix_from_mean_sq(imp, calib.tokens(), 64, {"text"});
  EXPECT_EQ(m.chunk_count, 16);
  const std::string dir = test::temp_dir("imx_model");
  std::vector<LinearShape> shapes;
  for (Linear* l : model.linears()) shapes.push_back({l->name(), l->in_features()});
  for (const char* file : {"/i.gguf", "/i.dat"}) {
    write_imatrix(m, dir + file);
    const auto back = imatrix_for_linears(read_imatrix(dir + file), shapes);
    ASSERT_EQ(back.size(), imp.size()) << file;
    for (const auto& [name, want] : imp) {
      const std::vector<float>& got = back.at(name);
      ASSERT_EQ(got.size(), want.size());
      for (size_t c = 0; c < want.size(); ++c) EXPECT_NEAR(got[c], want[c], 1e-6f * want[c]) << file << name << c;
    }
  }
}

// ------------------------------------------------------------------ CLI

using test::CliResult;
using test::run_shrink;

TEST(Imatrix, CliWritesBothFormats) {
  const std::string dir = test::temp_dir("imx_cli");
  const ModelFile f = random_model(preset_config("tiny"), DType::F32, 5);
  save_gguf_model(f, dir + "/m.gguf");
  write_text_file(dir + "/calib.txt", sample_text());
  const std::string base = "imatrix " + dir + "/m.gguf --calib " + dir + "/calib.txt --calib-tokens 512 --seq-len 64 -o ";
  const CliResult g = run_shrink(base + dir + "/i.gguf");
  ASSERT_EQ(g.code, 0) << g.out;
  const CliResult d = run_shrink(base + dir + "/i.dat");
  ASSERT_EQ(d.code, 0) << d.out;
  const ImportanceMatrix a = read_imatrix(dir + "/i.gguf"), b = read_imatrix(dir + "/i.dat");
  EXPECT_EQ(a.datasets, std::vector<std::string>{dir + "/calib.txt"});
  EXPECT_EQ(a.chunk_size, 64);
  EXPECT_EQ(a.chunk_count, 8);
  EXPECT_EQ(b.chunk_count, 8);
  // Every block linear of the 2-layer llama, none for the head.
  ASSERT_EQ(a.entries.size(), 14u);
  EXPECT_FALSE(a.entries.count("output.weight"));
  EXPECT_EQ(a.entries.at("blk.1.ffn_down.weight").cols(), 172);
  EXPECT_EQ(a.entries.at("blk.0.attn_q.weight").counts, std::vector<float>{512.0f});
  // The same means in both files, and the same as collect_importance in one pass.
  Transformer model(f);
  const auto imp = quant::collect_importance(model, calib::make_calib_set(*f.tokenizer, sample_text(), 512, 64));
  for (const auto& [name, e] : a.entries) {
    const std::vector<float> x = imatrix_mean_sq(e), y = imatrix_mean_sq(b.entries.at(name));
    const std::vector<float>& z = imp.at(imatrix_linear_name(name));
    for (size_t c = 0; c < x.size(); ++c) {
      EXPECT_NEAR(x[c], y[c], 1e-6f * x[c]) << name << c;
      EXPECT_NEAR(x[c], z[c], 1e-5f * z[c]) << name << c;
    }
  }
  const CliResult bad = run_shrink(base + dir + "/i.txt");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("i.txt: name the output .gguf"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace shrink
