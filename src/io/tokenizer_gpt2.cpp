// GPT-2 byte-level BPE (Radford et al. 2019, openai/gpt-2 encoder.py; the
// same algorithm as Hugging Face's ByteLevel BPE and llama.cpp's "gpt2"
// vocabularies):
//   1. split the text into pre-tokens with GPT-2's regex
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      (matched by hand over code points: std::regex has no \p{L}; \s is
//      Unicode's White_Space, as in Python's regex module that GPT-2 used and
//      in Oniguruma that Hugging Face uses; \p{L}/\p{N} come from a
//      generated Unicode 14 table, unicode_classes.inc);
//   2. spell each pre-token's bytes with GPT-2's byte-to-unicode alphabet, so
//      every byte is a printable character and the vocabulary is text;
//   3. repeatedly merge the adjacent pair with the lowest merge rank (all its
//      non-overlapping occurrences, left to right) until no pair has a rank.
// Special tokens in the text are encoded as text (llama.cpp's default when
// parse_special is off); user-defined tokens are matched literally first.
#include <algorithm>
#include <array>
#include <mutex>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "io/tokenizer_internal.h"

namespace shrink {

namespace {

// ---- Unicode classes for the pre-tokenizer ----------------------------------

enum CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

struct ClassRange {
  uint32_t first, last;
  uint8_t cls;
};

// \p{L}, \p{N} and White_Space as ranges (scripts/gen_unicode_classes.py).
constexpr ClassRange kClassRanges[] = {
#include "io/unicode_classes.inc"
};

CharClass char_class(uint32_t cp) {
  const auto* end = std::end(kClassRanges);
  const auto* it = std::upper_bound(std::begin(kClassRanges), end, cp,
                                    [](uint32_t c, const ClassRange& r) { return c < r.first; });
  if (it == std::begin(kClassRanges)) return kOther;
  --it;
  return cp <= it->last ? static_cast<CharClass>(it->cls) : kOther;
}

// Classes of the 128 ASCII code points, which are most of any text.
const std::array<CharClass, 128>& ascii_classes() {
  static const std::array<CharClass, 128> table = [] {
    std::array<CharClass, 128> t{};
    for (uint32_t c = 0; c < 128; ++c) t[c] = char_class(c);
    return t;
  }();
  return table;
}

constexpr uint32_t kInvalidCp = 0xFFFFFFFF;  // a byte that is not valid UTF-8: a class-"other" unit of its own

// Decodes one UTF-8 sequence at s[i]; returns {code point, byte length}.
std::pair<uint32_t, uint32_t> decode_utf8(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return {c, 1};
  uint32_t len = 0, cp = 0;
  if ((c >> 5) == 0x6) {
    len = 2, cp = c & 0x1F;
  } else if ((c >> 4) == 0xE) {
    len = 3, cp = c & 0x0F;
  } else if ((c >> 3) == 0x1E) {
    len = 4, cp = c & 0x07;
  } else {
    return {kInvalidCp, 1};
  }
  if (i + len > s.size()) return {kInvalidCp, 1};
  for (uint32_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc >> 6) != 0x2) return {kInvalidCp, 1};
    cp = (cp << 6) | (cc & 0x3F);
  }
  return {cp, len};
}

struct CodePoint {
  uint32_t cp, len;  // len: bytes
  CharClass cls;
};

CodePoint code_point_at(std::string_view s, size_t i) {
  const auto [cp, len] = decode_utf8(s, i);
  const CharClass cls = cp < 128 ? ascii_classes()[cp] : cp == kInvalidCp ? kOther : char_class(cp);
  return {cp, len, cls};
}

// Byte length of a contraction ('s 't 're 've 'm 'll 'd, lowercase only, as
// in GPT-2) at s[i], or 0. All ASCII, so bytes can be compared directly.
size_t contraction_len(std::string_view s, size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  const char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= s.size()) return 0;
  const char b = s[i + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// End (byte offset) of the regex match that starts at s[i]. The regex's
// alternatives are tried in order, as a backtracking engine would. Works on
// the text in place: no per-code-point array, so memory stays flat on big texts.
size_t match_end(std::string_view s, size_t i) {
  const size_t n = s.size();
  if (size_t len = contraction_len(s, i)) return i + len;
  // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional ASCII space,
  // then a run of one class.
  const size_t j = s[i] == ' ' ? i + 1 : i;
  if (j < n) {
    const CharClass cls = code_point_at(s, j).cls;
    if (cls != kSpace) {
      size_t k = j;
      for (CodePoint c; k < n && (c = code_point_at(s, k)).cls == cls;) k += c.len;
      return k;
    }
  }
  // Here s[i] starts white space. "\s+(?!\S)" takes the run but gives back
  // its last character when a non-space follows (so that space can start the
  // next word); a run of one followed by a non-space falls to "\s+".
  size_t k = i, last = i;
  for (CodePoint c; k < n && (c = code_point_at(s, k)).cls == kSpace;) last = k, k += c.len;
  if (k == n || last == i) return k;
  return last;
}

// Calls emit(string_view) for each pre-token of `text`, in order.
template <typename Emit>
void gpt2_pretokenize(std::string_view text, Emit&& emit) {
  for (size_t i = 0; i < text.size();) {
    const size_t end = match_end(text, i);
    emit(text.substr(i, end - i));
    i = end;
  }
}

// ---- GPT-2's byte <-> unicode alphabet --------------------------------------

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// GPT-2's bytes_to_unicode(): bytes that are printable Latin-1 ('!'..'~',
// U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves; the other 68 bytes,
// in increasing order, take U+0100, U+0101, ... so no token contains
// white space or control characters.
const std::array<uint32_t, 256>& byte_to_code_point() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table;
}

class Gpt2Tokenizer : public Tokenizer {
 public:
  explicit Gpt2Tokenizer(Vocab v);
  std::string kind() const override { return "gpt2"; }
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;
  std::string piece(int32_t id, int32_t prev) const override;

 private:
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  int rank(std::string_view left, std::string_view right) const;
  int32_t symbol_id(std::string_view symbol, std::string_view word) const;

  std::unordered_map<std::string, int32_t> token_to_id_;
  std::unordered_map<std::string, int> merge_rank_;  // "left right" -> rank
  std::array<std::string, 256> byte_symbol_;          // byte -> its character, UTF-8
  std::unordered_map<uint32_t, uint8_t> symbol_byte_; // inverse
  std::vector<std::string> user_defined_;             // matched literally, longest first

  // Pre-token -> ids. Text repeats its words, and BPE is the expensive part.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

Gpt2Tokenizer::Gpt2Tokenizer(Vocab v) {
  vocab_ = std::move(v);
  const size_t n = vocab_.tokens.size();
  if (vocab_.types.size() != n) vocab_.types.assign(n, kTokenNormal);
  for (size_t i = 0; i < n; ++i) {
    token_to_id_.emplace(vocab_.tokens[i], static_cast<int32_t>(i));
    if (vocab_.types[i] == kTokenUserDefined && !vocab_.tokens[i].empty()) user_defined_.push_back(vocab_.tokens[i]);
  }
  std::sort(user_defined_.begin(), user_defined_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (size_t r = 0; r < vocab_.merges.size(); ++r) {
    const std::string& m = vocab_.merges[r];
    SHRINK_CHECK(m.find(' ') != std::string::npos && m.find(' ') == m.rfind(' '), "GPT-2 merge ", r, " '", m,
                 "' is not two tokens separated by one space");
    merge_rank_.emplace(m, static_cast<int>(r));  // a repeated pair keeps its first (lowest) rank
  }
  const auto& cps = byte_to_code_point();
  for (int b = 0; b < 256; ++b) {
    append_utf8(byte_symbol_[b], cps[b]);
    symbol_byte_.emplace(cps[b], static_cast<uint8_t>(b));
  }
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  // User-defined tokens are cut out first; the text between them is encoded.
  while (!text.empty()) {
    size_t best = std::string_view::npos;
    const std::string* best_tok = nullptr;
    for (const std::string& t : user_defined_) {
      const size_t at = text.find(t);
      if (at < best) best = at, best_tok = &t;  // ties keep the longer (sorted first)
    }
    if (best_tok == nullptr) break;
    encode_text(text.substr(0, best), out);
    out.push_back(token_to_id_.at(*best_tok));
    text.remove_prefix(best + best_tok->size());
  }
  encode_text(text, out);
  return out;
}

void Gpt2Tokenizer::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  gpt2_pretokenize(text, [&](std::string_view word) { encode_word(word, out); });
}

void Gpt2Tokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  const std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  bpe(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= (1u << 16)) cache_.clear();  // bounded: long runs of new text must not grow it forever
  cache_.emplace(key, std::move(ids));
}

int Gpt2Tokenizer::rank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left).append(1, ' ').append(right);
  auto it = merge_rank_.find(key);
  return it == merge_rank_.end() ? -1 : it->second;
}

// Merges by rank with a heap instead of GPT-2's rescan per merge: popping the
// lowest (rank, position) first merges each pair's occurrences left to right,
// exactly as GPT-2 does, in O(n log n) rather than O(n^2) on long pre-tokens.
void Gpt2Tokenizer::bpe(std::string_view word, std::vector<int32_t>& out) const {
  std::string s;  // the word in GPT-2's alphabet
  struct Symbol {
    int prev, next;
    size_t start, len;  // byte range in s; len 0 once merged away
  };
  std::vector<Symbol> sym;
  for (unsigned char b : word) {
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, idx + 1, s.size(), byte_symbol_[b].size()});
    s += byte_symbol_[b];
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  struct Pair {
    int rank, left;
    size_t len;  // combined length when pushed: a changed length means stale
    bool operator>(const Pair& o) const { return rank > o.rank || (rank == o.rank && left > o.left); }
  };
  std::priority_queue<Pair, std::vector<Pair>, std::greater<Pair>> heap;
  auto push = [&](int l) {
    if (l < 0 || sym[l].next < 0) return;
    const Symbol& L = sym[l];
    const Symbol& R = sym[L.next];
    const int r = rank(std::string_view(s).substr(L.start, L.len), std::string_view(s).substr(R.start, R.len));
    if (r >= 0) heap.push({r, l, L.len + R.len});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) push(i);
  while (!heap.empty()) {
    const Pair p = heap.top();
    heap.pop();
    Symbol& L = sym[p.left];
    if (L.len == 0 || L.next < 0 || L.len + sym[L.next].len != p.len) continue;  // stale
    Symbol& R = sym[L.next];
    L.len += R.len;
    R.len = 0;
    L.next = R.next;
    if (L.next >= 0) sym[L.next].prev = p.left;
    push(L.prev);
    push(p.left);
  }
  for (int i = 0; i != -1; i = sym[i].next) {
    const std::string_view symbol = std::string_view(s).substr(sym[i].start, sym[i].len);
    if (const int32_t id = symbol_id(symbol, word); id >= 0) {
      out.push_back(id);
    } else {  // not a token (inconsistent merges): spell it in single-byte tokens
      for (size_t k = 0; k < symbol.size();) {
        const auto [cp, len] = decode_utf8(symbol, k);
        out.push_back(symbol_id(symbol.substr(k, len), word));
        k += len;
      }
    }
  }
}

// Token id of a symbol; -1 for a multi-character symbol the vocabulary lacks.
int32_t Gpt2Tokenizer::symbol_id(std::string_view symbol, std::string_view word) const {
  if (auto it = token_to_id_.find(std::string(symbol)); it != token_to_id_.end()) return it->second;
  const bool single = decode_utf8(symbol, 0).second == symbol.size();
  if (!single) return -1;
  SHRINK_CHECK(vocab_.unk_id >= 0, "GPT-2 vocabulary has no token for byte character '", symbol, "' (in '",
               word, "') and no unknown token");
  return vocab_.unk_id;
}

std::string Gpt2Tokenizer::piece(int32_t id, int32_t) const {
  if (id < 0 || id >= vocab_size()) return "";
  const int32_t type = vocab_.types[id];
  if (type == kTokenControl || type == kTokenUnused) return "";
  const std::string& t = vocab_.tokens[id];
  if (type == kTokenUserDefined) return t;
  std::string out;
  for (size_t i = 0; i < t.size();) {
    const auto [cp, len] = decode_utf8(t, i);
    auto it = symbol_byte_.find(cp);
    if (it != symbol_byte_.end())
      out += static_cast<char>(it->second);
    else
      out.append(t, i, len);  // not in GPT-2's alphabet: keep the text as it is
    i += len;
  }
  return out;
}

}  // namespace

std::shared_ptr<Tokenizer> make_gpt2_tokenizer(Vocab vocab) {
  return std::make_shared<Gpt2Tokenizer>(std::move(vocab));
}

// ---- Loaders ----------------------------------------------------------------

namespace {

using nlohmann::json;

json parse_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
}

// Fills tokens/types from a {token: id} map. Ids need not be dense: holes
// become unused "[PAD<id>]" tokens, as llama.cpp's converter writes them.
void set_vocab_from_map(Vocab& v, const json& map, const std::string& path) {
  SHRINK_CHECK(map.is_object() && !map.empty(), path, ": the vocabulary is not a non-empty {token: id} object");
  int64_t max_id = -1;
  for (const auto& [tok, id] : map.items()) {
    SHRINK_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 24), path,
                 ": token '", tok, "' has a bad id ", id.dump());
    max_id = std::max(max_id, id.get<int64_t>());
  }
  v.tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  v.types.assign(v.tokens.size(), kTokenUndefined);
  for (const auto& [tok, id] : map.items()) {
    const auto i = static_cast<size_t>(id.get<int64_t>());
    SHRINK_CHECK(v.types[i] == kTokenUndefined, path, ": id ", i, " is used by two tokens ('", v.tokens[i],
                 "' and '", tok, "')");
    v.tokens[i] = tok;
    v.types[i] = kTokenNormal;
  }
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.types[i] == kTokenUndefined) v.tokens[i] = "[PAD" + std::to_string(i) + "]", v.types[i] = kTokenUnused;
}

// Places a special (control) or user-defined token at `id`, growing the vocabulary if needed.
void set_added_token(Vocab& v, int64_t id, const std::string& content, int32_t type, const std::string& path) {
  SHRINK_CHECK(id >= 0 && id < (1 << 24), path, ": added token '", content, "' has a bad id ", id);
  const auto i = static_cast<size_t>(id);
  while (v.tokens.size() <= i) {
    v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
    v.types.push_back(kTokenUnused);
  }
  SHRINK_CHECK(v.types[i] == kTokenUnused || v.tokens[i] == content, path, ": added token '", content,
               "' has id ", i, ", which is the vocabulary's '", v.tokens[i], "'");
  v.tokens[i] = content;
  v.types[i] = type;
}

int32_t find_token(const Vocab& v, const std::string& text) {
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == text) return static_cast<int32_t>(i);
  return -1;
}

// GPT-2 conventions: "<|endoftext|>" ends and (when asked) starts a
// sequence; nothing is prepended by default; no SPM space prefix.
void set_gpt2_defaults(Vocab& v) {
  v.model = "gpt2";
  v.scores.clear();
  v.add_bos = false;
  v.add_space_prefix = false;
  const int32_t eot = find_token(v, "<|endoftext|>");
  if (eot >= 0) {
    v.types[eot] = kTokenControl;
    v.bos_id = v.eos_id = eot;
  }
}

}  // namespace

Vocab load_gpt2_vocab(const std::string& vocab_json, const std::string& merges_txt) {
  Vocab v;
  set_vocab_from_map(v, parse_json_file(vocab_json), vocab_json);
  const std::string text = read_text_file(merges_txt);
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // The original GPT-2 merges.txt starts with "#version: 0.2"; copies may not.
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    SHRINK_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < line.size() && line.find(' ', sp + 1) == std::string::npos,
                 merges_txt, ":", line_no, ": expected two tokens separated by one space, got '", line, "'");
    v.merges.push_back(std::move(line));
  }
  SHRINK_CHECK(!v.merges.empty(), merges_txt, ": no merges");
  set_gpt2_defaults(v);
  return v;
}

namespace {

// Throws unless the tokenizer.json pipeline is GPT-2's: no normalizer and the
// ByteLevel pre-tokenizer with its regex and no added prefix space. Anything
// else (Llama 3's or Qwen's regex, Metaspace, NFC, ...) would tokenize
// differently, so it is refused rather than run wrongly.
void check_pipeline(const json& j, const std::string& path) {
  const json& norm = j.contains("normalizer") ? j["normalizer"] : json();
  SHRINK_CHECK(norm.is_null(), path, ": normalizer ", norm.dump(), " is not supported (GPT-2 byte-level BPE has none)");
  const json& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
  const std::string type = pre.is_object() ? pre.value("type", "") : "";
  SHRINK_CHECK(type == "ByteLevel" && pre.value("use_regex", true), path, ": pre-tokenizer '",
               type.empty() ? pre.dump() : type,
               "' is not supported (shrink implements GPT-2's ByteLevel pre-tokenizer only",
               type == "Metaspace" ? "; for SentencePiece-style models use tokenizer.model)" : ")");
  SHRINK_CHECK(!pre.value("add_prefix_space", false), path, ": ByteLevel add_prefix_space is not supported");
}

std::vector<std::string> read_merges(const json& merges, const std::string& path) {
  SHRINK_CHECK(merges.is_array(), path, ": model.merges is not an array");
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (const json& m : merges) {
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
    } else {  // newer tokenizers write [left, right]
      SHRINK_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), path, ": merge ",
                   out.size(), " is neither \"a b\" nor [a, b]: ", m.dump());
      out.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    }
  }
  return out;
}

// "<s>" or {"content": "<s>", ...} as tokenizer_config.json writes special tokens.
std::string special_token_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

// bos/eos/unk/pad and add_bos from tokenizer_config.json beside tokenizer.json, if present.
void apply_tokenizer_config(Vocab& v, const std::string& json_path) {
  const size_t slash = json_path.find_last_of('/');
  const std::string cfg_path = (slash == std::string::npos ? "" : json_path.substr(0, slash + 1)) + "tokenizer_config.json";
  if (!file_exists(cfg_path)) return;
  const json cfg = parse_json_file(cfg_path);
  auto id_of = [&](const char* key, int32_t fallback) {
    if (!cfg.contains(key)) return fallback;
    const int32_t id = find_token(v, special_token_text(cfg[key]));
    return id >= 0 ? id : fallback;
  };
  v.bos_id = id_of("bos_token", v.bos_id);
  v.eos_id = id_of("eos_token", v.eos_id);
  v.unk_id = id_of("unk_token", v.unk_id);
  v.pad_id = id_of("pad_token", v.pad_id);
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) v.add_bos = cfg["add_bos_token"].get<bool>();
}

Vocab read_tokenizer_json(const json& j, const std::string& path) {
  SHRINK_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), path,
               ": no \"model\" object (is this a Hugging Face tokenizer.json?)");
  const json& model = j["model"];
  const std::string type = model.value("type", "BPE");
  SHRINK_CHECK(type == "BPE", path, ": tokenizer model type '", type, "' is not supported (BPE only)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    SHRINK_CHECK(!model.contains(key) || model[key].is_null() || model[key] == "", path, ": BPE with ", key,
                 " is not byte-level BPE (not supported)");
  check_pipeline(j, path);
  Vocab v;
  SHRINK_CHECK(model.contains("vocab"), path, ": model has no vocab");
  set_vocab_from_map(v, model["vocab"], path);
  v.merges = read_merges(model.contains("merges") ? model["merges"] : json::array(), path);
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& t : j["added_tokens"]) {
      SHRINK_CHECK(t.is_object() && t.contains("id") && t["id"].is_number_integer() && t.contains("content") &&
                       t["content"].is_string(), path, ": malformed added_tokens entry ", t.dump());
      const int32_t ttype = t.value("special", false) ? kTokenControl : kTokenUserDefined;
      set_added_token(v, t["id"].get<int64_t>(), t["content"].get<std::string>(), ttype, path);
    }
  }
  set_gpt2_defaults(v);
  if (model.contains("unk_token") && model["unk_token"].is_string())
    v.unk_id = find_token(v, model["unk_token"].get<std::string>());
  apply_tokenizer_config(v, path);
  return v;
}

}  // namespace

Vocab load_tokenizer_json(const std::string& path) {
  try {
    return read_tokenizer_json(parse_json_file(path), path);
  } catch (const json::exception& e) {  // a field of the wrong JSON type
    fail(path, ": malformed tokenizer.json (", e.what(), ")");
  }
}

}  // namespace shrink
