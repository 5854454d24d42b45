// Tokenizers against independent references. The expected ids in
// tests/data/tokenizer/*.json come from other implementations (JavaScript
// r50k_base encoders for GPT-2, the SentencePiece library for Llama-2 and
// teacher-9M); scripts/make_tokenizer_fixtures.sh regenerates them.
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "io/tokenizer.h"
#include "test_util.h"

namespace shrink {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

struct Case {
  std::string text;
  Ids ids;
};

struct Fixture {
  std::vector<Case> cases;  // the tricky strings
  std::vector<Case> lines;  // WikiText lines (empty when ../shared is absent)
  // The whole of wiki.test.raw as one text: token count and ids_hash() of the ids.
  int64_t whole_file_tokens = -1;
  int64_t whole_file_hash = -1;
};

// The fixture generators' hash of an id sequence: h = (h * 1000003 + id) mod 1e9+7.
int64_t ids_hash(const Ids& ids) {
  int64_t h = 0;
  for (int32_t id : ids) h = (h * 1000003 + id) % 1000000007;
  return h;
}

json read_json(const std::string& path) { return json::parse(read_text_file(path)); }

std::string fixture_path(const std::string& name) {
  return std::string(SHRINK_SOURCE_DIR) + "/tests/data/tokenizer/" + name;
}

// wiki.test.raw split at '\n' (each line without its newline).
const std::vector<std::string>& wiki_lines() {
  static const std::vector<std::string> lines = [] {
    std::vector<std::string> out;
    const std::string path = test::asset("text/wikitext-2-raw/wiki.test.raw");
    if (path.empty()) return out;
    std::istringstream in(read_text_file(path));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }();
  return lines;
}

Fixture load_fixture(const std::string& name) {
  const json j = read_json(fixture_path(name));
  Fixture f;
  for (const json& c : j["cases"]) f.cases.push_back({c["text"].get<std::string>(), c["ids"].get<Ids>()});
  const json& w = j["wikitext"];
  f.whole_file_tokens = w.value("whole_file_tokens_with_bos", w.value("whole_file_tokens", int64_t{-1}));
  f.whole_file_hash = w.value("whole_file_ids_hash", int64_t{-1});
  const auto& lines = wiki_lines();
  if (lines.empty()) return f;
  for (size_t k = 0; k < w["lines"].size(); ++k) {
    const auto i = w["lines"][k].get<size_t>();
    SHRINK_CHECK(i < lines.size(), name, ": line ", i, " is past the end of wiki.test.raw");
    f.lines.push_back({lines[i] + "\n", w["ids"][k].get<Ids>()});
  }
  return f;
}

std::string show(const std::string& s) { return json(s).dump(); }

// Every case must tokenize to the reference ids; all mismatches are listed.
void expect_matches(const Tokenizer& tok, const std::vector<Case>& cases, const std::string& what) {
  int bad = 0;
  for (const Case& c : cases) {
    const Ids got = tok.encode(c.text, false);
    if (got != c.ids) {
      ++bad;
      ADD_FAILURE() << what << ": " << show(c.text) << "\n  got      " << json(got).dump() << "\n  expected "
                    << json(c.ids).dump();
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << cases.size() << " differ";
}

void expect_round_trips(const Tokenizer& tok, const std::vector<Case>& cases, bool add_bos) {
  for (const Case& c : cases) EXPECT_EQ(tok.decode(tok.encode(c.text, add_bos)), c.text) << show(c.text);
}

// ---------------------------------------------------------------- GPT-2 ----

// Loading the 50k-token GPT-2 vocabulary takes a few hundred ms: the tests share one per file pair.
std::shared_ptr<Tokenizer> gpt2_tokenizer(const std::string& vocab, const std::string& merges) {
  static std::map<std::string, std::shared_ptr<Tokenizer>> cache;
  auto& tok = cache[vocab + "|" + merges];
  if (!tok) tok = make_tokenizer(load_gpt2_vocab(vocab, merges));
  return tok;
}

#define REQUIRE_GPT2()                                                    \
  SHRINK_REQUIRE_ASSET(vocab_json, "tokenizers/gpt2/vocab.json");         \
  SHRINK_REQUIRE_ASSET(merges_txt, "tokenizers/gpt2/merges.txt")

TEST(TokenizerGpt2, MatchesReferenceOnStrings) {
  REQUIRE_GPT2();
  const auto tok = gpt2_tokenizer(vocab_json, merges_txt);
  EXPECT_EQ(tok->kind(), "gpt2");
  expect_matches(*tok, load_fixture("gpt2.json").cases, "gpt2");
}

TEST(TokenizerGpt2, MatchesReferenceOnWikitextLines) {
  REQUIRE_GPT2();
  const Fixture f = load_fixture("gpt2.json");
  if (f.lines.empty()) GTEST_SKIP() << "needs ../shared/assets/text/wikitext-2-raw/wiki.test.raw";
  expect_matches(*gpt2_tokenizer(vocab_json, merges_txt), f.lines, "gpt2 wikitext");
}

// The whole of wiki.test.raw as one text (1.3 MB): same count and same ids
// (by hash) as the JavaScript reference.
TEST(TokenizerGpt2, WholeWikitext) {
  REQUIRE_GPT2();
  SHRINK_REQUIRE_ASSET(wiki, "text/wikitext-2-raw/wiki.test.raw");
  const Fixture f = load_fixture("gpt2.json");
  const std::string text = read_text_file(wiki);
  const Ids ids = gpt2_tokenizer(vocab_json, merges_txt)->encode(text, false);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), f.whole_file_tokens);
  EXPECT_EQ(ids_hash(ids), f.whole_file_hash);
  EXPECT_EQ(gpt2_tokenizer(vocab_json, merges_txt)->decode(ids), text);
}

TEST(TokenizerGpt2, RoundTrips) {
  REQUIRE_GPT2();
  const auto tok = gpt2_tokenizer(vocab_json, merges_txt);
  const Fixture f = load_fixture("gpt2.json");
  expect_round_trips(*tok, f.cases, false);
  expect_round_trips(*tok, f.lines, false);
  // Byte-level BPE covers any bytes, valid UTF-8 or not.
  const std::string raw = std::string("\xff\xfe\x80 abc \xe2\x96 \xf0\x9f\x98", 15) + std::string(1, '\0') + "z";
  EXPECT_EQ(tok->decode(tok->encode(raw, false)), raw);
}

TEST(TokenizerGpt2, VocabMetadata) {
  REQUIRE_GPT2();
  const auto tok = gpt2_tokenizer(vocab_json, merges_txt);
  const Vocab& v = tok->vocab();
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(v.merges.size(), 50000u);
  EXPECT_EQ(v.merges[0], "\xc4\xa0 t");  // "Ġ t": space-t is GPT-2's first merge
  EXPECT_EQ(tok->bos_id(), 50256);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_EQ(v.types[50256], kTokenControl);
  EXPECT_EQ(v.types[0], kTokenNormal);
  EXPECT_FALSE(v.add_bos);
  EXPECT_EQ(tok->piece(50256, -1), "");  // control tokens render as nothing
  EXPECT_EQ(tok->piece(262, -1), " the");
  EXPECT_EQ(tok->encode("Hello world", true), (Ids{50256, 15496, 995}));
}

TEST(TokenizerGpt2, MergesTxtWithVersionHeader) {
  REQUIRE_GPT2();
  const std::string dir = test::temp_dir("gpt2_version");
  write_text_file(dir + "/merges.txt", "#version: 0.2\n" + read_text_file(merges_txt));
  const Vocab a = load_gpt2_vocab(vocab_json, merges_txt);
  const Vocab b = load_gpt2_vocab(vocab_json, dir + "/merges.txt");
  EXPECT_EQ(a.merges, b.merges);
  std::filesystem::remove_all(dir);
}

// A tokenizer.json built from vocab.json + merges.txt, merges in either
// format, with <|endoftext|> special and one user-defined token added.
std::string write_tokenizer_json(const std::string& dir, const std::string& vocab_json, const Vocab& v,
                                 bool pair_merges) {
  json merges = json::array();
  for (const std::string& m : v.merges) {
    const size_t sp = m.find(' ');
    if (pair_merges)
      merges.push_back({m.substr(0, sp), m.substr(sp + 1)});
    else
      merges.push_back(m);
  }
  json j = {{"version", "1.0"},
            {"added_tokens",
             {{{"id", 50256}, {"content", "<|endoftext|>"}, {"special", true}},
              {{"id", 50257}, {"content", "<|user|>"}, {"special", false}}}},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}}},
            {"model", {{"type", "BPE"}, {"vocab", read_json(vocab_json)}, {"merges", merges}}}};
  const std::string path = dir + (pair_merges ? "/pairs.json" : "/strings.json");
  write_text_file(path, j.dump());
  return path;
}

TEST(TokenizerGpt2, TokenizerJsonMatchesVocabJson) {
  REQUIRE_GPT2();
  const Vocab ref = load_gpt2_vocab(vocab_json, merges_txt);
  const auto ref_tok = make_tokenizer(ref);
  const std::string dir = test::temp_dir("gpt2_json");
  for (bool pairs : {false, true}) {
    const Vocab v = load_tokenizer_json(write_tokenizer_json(dir, vocab_json, ref, pairs));
    EXPECT_EQ(v.model, "gpt2");
    ASSERT_EQ(v.tokens.size(), ref.tokens.size() + 1);
    EXPECT_TRUE(std::equal(ref.tokens.begin(), ref.tokens.end(), v.tokens.begin()));
    EXPECT_EQ(v.merges, ref.merges);
    EXPECT_EQ(v.bos_id, 50256);
    EXPECT_EQ(v.types[50256], kTokenControl);
    EXPECT_EQ(v.types[50257], kTokenUserDefined);
    const auto tok = make_tokenizer(v);
    expect_matches(*tok, load_fixture("gpt2.json").cases, pairs ? "tokenizer.json [a,b]" : "tokenizer.json \"a b\"");
    // User-defined tokens are cut out of the text before pre-tokenization.
    Ids want = ref_tok->encode("Hi ", false);
    want.push_back(50257);
    for (int32_t id : ref_tok->encode(" there", false)) want.push_back(id);
    EXPECT_EQ(tok->encode("Hi <|user|> there", false), want);
    EXPECT_EQ(tok->decode(want), "Hi <|user|> there");
  }
  // tokenizer_config.json beside tokenizer.json names the special tokens.
  write_text_file(dir + "/tokenizer_config.json", R"({"add_bos_token": true, "eos_token": {"content": "<|user|>"}})");
  const Vocab v = load_tokenizer_json(dir + "/strings.json");
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(v.bos_id, 50256);
  EXPECT_EQ(v.eos_id, 50257);
  std::filesystem::remove_all(dir);
}

TEST(TokenizerGpt2, RejectsMalformedFiles) {
  const std::string dir = test::temp_dir("gpt2_bad");
  write_text_file(dir + "/vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write_text_file(dir + "/merges.txt", "a b\nab\n");
  EXPECT_THROW(load_gpt2_vocab(dir + "/vocab.json", dir + "/merges.txt"), Error);
  write_text_file(dir + "/dup.json", R"({"a": 0, "b": 0})");
  write_text_file(dir + "/merges.txt", "a b\n");
  EXPECT_THROW(load_gpt2_vocab(dir + "/dup.json", dir + "/merges.txt"), Error);
  write_text_file(dir + "/bad.json", "{not json");
  EXPECT_THROW(load_gpt2_vocab(dir + "/bad.json", dir + "/merges.txt"), Error);
  // SentencePiece-style BPE in tokenizer.json is not byte-level: refused, not mis-tokenized.
  write_text_file(dir + "/meta.json",
                  R"({"pre_tokenizer": {"type": "Metaspace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_THROW(load_tokenizer_json(dir + "/meta.json"), Error);
  write_text_file(dir + "/nfc.json", R"({"normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel"},
                                        "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_THROW(load_tokenizer_json(dir + "/nfc.json"), Error);
  write_text_file(dir + "/prefix.json", R"({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true},
                                           "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_THROW(load_tokenizer_json(dir + "/prefix.json"), Error);
  write_text_file(dir + "/types.json", R"({"pre_tokenizer": {"type": "ByteLevel"},
                                          "model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})");
  EXPECT_THROW(load_tokenizer_json(dir + "/types.json"), Error);
  write_text_file(dir + "/wp.json", R"({"pre_tokenizer": null, "model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  EXPECT_THROW(load_tokenizer_json(dir + "/wp.json"), Error);
  std::filesystem::remove_all(dir);
}

// A toy byte-level vocabulary (no assets needed): merges never cross the
// pre-token boundaries that GPT-2's regex draws.
TEST(TokenizerGpt2, ToyVocabularyRespectsPreTokens) {
  const std::string dir = test::temp_dir("gpt2_toy");
  json vocab = json::object();
  // GPT-2's alphabet: printable Latin-1 stands for itself, the other bytes map from U+0100 up.
  int next = 256, id = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int cp = printable ? b : next++;
    std::string s = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                              : std::string{static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    vocab[s] = id++;
  }
  for (const char* t : {"th", "the", "\xc4\xa0the", "e\xc4\xa0", "\xc4\xa0\xc4\xa0"}) vocab[t] = id++;
  write_text_file(dir + "/vocab.json", vocab.dump());
  write_text_file(dir + "/merges.txt", "t h\nth e\n\xc4\xa0 the\ne \xc4\xa0\n\xc4\xa0 \xc4\xa0\n");
  const auto tok = make_tokenizer(load_gpt2_vocab(dir + "/vocab.json", dir + "/merges.txt"));
  // "the the": pre-tokens "the", " the"; "e " is a merge but spans two pre-tokens.
  EXPECT_EQ(tok->encode("the the", false), (Ids{257, 258}));
  // "a   the": "a", "  " (the run gives its last space to " the"), " the".
  EXPECT_EQ(tok->encode("a   the", false), (Ids{'a', 260, 258}));
  EXPECT_EQ(tok->decode(tok->encode("a   the", false)), "a   the");
  std::filesystem::remove_all(dir);
}

// ------------------------------------------------------- SentencePiece ----

std::shared_ptr<Tokenizer> llama2c_tokenizer(const std::string& path, int vocab_size) {
  return make_tokenizer(load_llama2c_vocab(path, vocab_size));
}

TEST(TokenizerSpm, Llama2MatchesSentencePiece) {
  SHRINK_REQUIRE_ASSET(bin, "tokenizers/llama2/tokenizer.bin");
  const auto tok = llama2c_tokenizer(bin, 32000);
  EXPECT_EQ(tok->kind(), "spm");
  const Fixture f = load_fixture("llama2.json");
  expect_matches(*tok, f.cases, "llama2 spm");
  expect_matches(*tok, f.lines, "llama2 spm wikitext");
  expect_round_trips(*tok, f.cases, true);
  expect_round_trips(*tok, f.lines, true);
}

TEST(TokenizerSentencePiece, Llama2MatchesFixtures) {
  SHRINK_REQUIRE_ASSET(model, "tokenizers/llama2/tokenizer.model");
  const auto tok = load_sentencepiece(model);
  EXPECT_EQ(tok->kind(), "sentencepiece");
  const Fixture f = load_fixture("llama2.json");
  expect_matches(*tok, f.cases, "llama2 sentencepiece");
  expect_matches(*tok, f.lines, "llama2 sentencepiece wikitext");
  expect_round_trips(*tok, f.cases, true);
  EXPECT_EQ(tok->encode("Hello world", true), (Ids{1, 15043, 3186}));
}

TEST(TokenizerSentencePiece, RejectsBadFiles) {
  const std::string dir = test::temp_dir("sp_bad");
  write_text_file(dir + "/tokenizer.model", "this is not a protobuf");
  EXPECT_THROW(load_sentencepiece(dir + "/tokenizer.model"), Error);
  EXPECT_THROW(load_sentencepiece(dir + "/missing.model"), Error);
  std::filesystem::remove_all(dir);
}

// The exported Vocab is the one llama2.c's tokenizer.bin holds (same
// pieces, scores and types), and the SPM algorithm over it reproduces
// SentencePiece: what a GGUF written from it would tokenize like.
TEST(TokenizerSentencePiece, Llama2VocabExport) {
  SHRINK_REQUIRE_ASSET(model, "tokenizers/llama2/tokenizer.model");
  SHRINK_REQUIRE_ASSET(bin, "tokenizers/llama2/tokenizer.bin");
  const Vocab v = load_sentencepiece(model)->vocab();
  const Vocab ref = load_llama2c_vocab(bin, 32000);
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.tokens, ref.tokens);
  EXPECT_EQ(v.scores, ref.scores);
  EXPECT_EQ(v.types, ref.types);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.types[3], kTokenByte);
  expect_matches(*make_tokenizer(v), load_fixture("llama2.json").cases, "spm over exported vocab");
}

TEST(TokenizerSpm, Teacher9MMatchesSentencePiece) {
  SHRINK_REQUIRE_ASSET(bin, "models/teacher-9M/llama2c/tokenizer.bin");
  SHRINK_REQUIRE_ASSET(model, "models/teacher-9M/tokenizer.model");
  const Fixture f = load_fixture("teacher9m.json");
  const auto spm = llama2c_tokenizer(bin, 4096);
  const auto sp = load_sentencepiece(model);
  for (const auto& tok : {spm, sp}) {
    expect_matches(*tok, f.cases, "teacher-9M " + tok->kind());
    expect_matches(*tok, f.lines, "teacher-9M " + tok->kind() + " wikitext");
    expect_round_trips(*tok, f.cases, true);
  }
  const Vocab& exported = sp->vocab();
  EXPECT_EQ(exported.tokens, spm->vocab().tokens);
  EXPECT_EQ(exported.scores, spm->vocab().scores);
  EXPECT_EQ(exported.types, spm->vocab().types);
  // The README's greedy prompt.
  EXPECT_EQ(spm->encode("Once upon a time", true), (Ids{1, 1459, 372, 681, 261, 587}));
}

// The whole of wiki.test.raw, as llama.cpp's perplexity tool tokenizes it
// (one string, with BOS): 469,255 tokens per the teacher-9M README.
TEST(TokenizerSpm, Teacher9MWholeWikitext) {
  SHRINK_REQUIRE_ASSET(bin, "models/teacher-9M/llama2c/tokenizer.bin");
  SHRINK_REQUIRE_ASSET(model, "models/teacher-9M/tokenizer.model");
  SHRINK_REQUIRE_ASSET(wiki, "text/wikitext-2-raw/wiki.test.raw");
  const std::string text = read_text_file(wiki);
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ours = llama2c_tokenizer(bin, 4096)->encode(text, true);
  const auto t1 = std::chrono::steady_clock::now();
  const Ids ref = load_sentencepiece(model)->encode(text, true);
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(ours.size(), 469255u);
  EXPECT_EQ(ref.size(), 469255u);
  EXPECT_TRUE(ours == ref) << "same count, different ids";
  const Fixture f = load_fixture("teacher9m.json");  // what SentencePiece gave when the fixture was made
  EXPECT_EQ(static_cast<int64_t>(ours.size()), f.whole_file_tokens);
  EXPECT_EQ(ids_hash(ours), f.whole_file_hash);
  using ms = std::chrono::milliseconds;
  std::printf("  wiki.test.raw: spm %lld ms, sentencepiece %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<ms>(t1 - t0).count()),
              static_cast<long long>(std::chrono::duration_cast<ms>(t2 - t1).count()));
}

TEST(TokenizerSpm, Llama2WholeWikitext) {
  SHRINK_REQUIRE_ASSET(bin, "tokenizers/llama2/tokenizer.bin");
  SHRINK_REQUIRE_ASSET(wiki, "text/wikitext-2-raw/wiki.test.raw");
  const Fixture f = load_fixture("llama2.json");  // the count SentencePiece gave when the fixture was made
  const Ids ours = llama2c_tokenizer(bin, 32000)->encode(read_text_file(wiki), true);
  EXPECT_EQ(static_cast<int64_t>(ours.size()), f.whole_file_tokens);
  EXPECT_EQ(ids_hash(ours), f.whole_file_hash);
}

// Random strings over a pool of awkward characters (spaces, punctuation,
// digits, accents, CJK, emoji, control bytes, a literal U+2581): the SPM
// algorithm over tokenizer.bin against libsentencepiece over tokenizer.model.
std::vector<std::string> random_strings(int count, uint32_t seed) {
  static const std::vector<std::string> pool = {
      " ", " ", " ", "  ", "\n", "\t", "\r\n", "e", "t", "a", "the", "ing", "Th", "'s", "'", "\"", ",", ".", "!!",
      "?", "-", "@-@", "0", "1", "42", "1999", "é", "ü", "ß", "İ", "日", "本", "语", "😀", "👍🏽", "❤️", "П", "ри",
      "\xe2\x96\x81", "\x01", "\x7f", "<s>", "</s>", "<0x41>", "\xc2\xa0", "\xe3\x80\x80", "ab", "xyz", "Q"};
  std::vector<std::string> out;
  uint32_t x = seed;
  auto next = [&] { return x = x * 1664525u + 1013904223u, x >> 8; };
  for (int i = 0; i < count; ++i) {
    std::string s;
    for (uint32_t n = next() % 24; n > 0; --n) s += pool[next() % pool.size()];
    out.push_back(s);
  }
  return out;
}

TEST(TokenizerSpm, RandomStringsMatchSentencePiece) {
  const struct {
    const char* bin;
    const char* model;
    int vocab_size;
  } tokenizers[] = {{"tokenizers/llama2/tokenizer.bin", "tokenizers/llama2/tokenizer.model", 32000},
                    {"models/teacher-9M/llama2c/tokenizer.bin", "models/teacher-9M/tokenizer.model", 4096}};
  for (const auto& t : tokenizers) {
    SHRINK_REQUIRE_ASSET(bin, t.bin);
    SHRINK_REQUIRE_ASSET(model, t.model);
    const auto spm = llama2c_tokenizer(bin, t.vocab_size);
    const auto sp = load_sentencepiece(model);
    std::vector<Case> cases;
    for (const std::string& s : random_strings(2000, 12345)) cases.push_back({s, sp->encode(s, false)});
    expect_matches(*spm, cases, std::string("random strings, ") + t.bin);
  }
}

TEST(TokenizerSpm, Stories260K) {
  SHRINK_REQUIRE_ASSET(bin, "models/stories260K/tok512.bin");
  const auto tok = llama2c_tokenizer(bin, 512);
  const std::string text = "Once upon a time";
  const Ids ids = tok->encode(text, true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_LT(ids.size(), text.size() / 2) << "a 512-token vocabulary still merges common words";
  for (size_t i = 1; i < ids.size(); ++i) {
    EXPECT_GT(ids[i], 2) << "no unknown or control tokens";
    EXPECT_NE(tok->vocab().types[ids[i]], kTokenByte) << "plain ASCII needs no byte fallback";
  }
  EXPECT_EQ(tok->decode(ids), text);
  std::printf("  stories260K \"%s\" -> %s\n", text.c_str(), json(ids).dump().c_str());
  const std::string tricky = "Hi!  \"Tom's\" 3 cats\n\t日本";
  EXPECT_EQ(tok->decode(tok->encode(tricky, true)), tricky);
}

// The GGUF vocabularies llama.cpp ships for its tokenizer tests, read by the
// GGUF reader, must tokenize like the references too.
TEST(TokenizerGguf, VocabsMatchReferences) {
  SHRINK_REQUIRE_ASSET(gpt2, "tokenizers/ggml-vocab/ggml-vocab-gpt-2.gguf");
  SHRINK_REQUIRE_ASSET(spm, "tokenizers/ggml-vocab/ggml-vocab-llama-spm.gguf");
  Vocab g;
  try {
    g = load_gguf_vocab(gpt2);
  } catch (const Error& e) {
    if (std::string(e.what()).find("not supported yet") != std::string::npos) GTEST_SKIP() << e.what();
    throw;
  }
  expect_matches(*make_tokenizer(std::move(g)), load_fixture("gpt2.json").cases, "gguf gpt2");
  expect_matches(*make_tokenizer(load_gguf_vocab(spm)), load_fixture("llama2.json").cases, "gguf llama spm");
}

}  // namespace
}  // namespace shrink
