// SentencePiece-style BPE over a scored vocabulary, as llama.cpp's SPM
// tokenizer runs it (llm_tokenizer_spm): split into UTF-8 characters, then
// repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring vocabulary token (ties: leftmost first); pieces that are not
// tokens are re-split along their merge history, and characters that are not
// tokens fall back to <0xXX> byte tokens.
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/tokenizer_internal.h"

namespace shrink {

namespace {

const std::string kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

int utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xe) return 3;
  if ((c >> 3) == 0x1e) return 4;
  return 1;  // stray continuation byte: treat as one unit
}

class SpmTokenizer : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab v) {
    vocab_ = std::move(v);
    const size_t n = vocab_.tokens.size();
    if (vocab_.scores.size() != n) vocab_.scores.assign(n, 0.0f);
    if (vocab_.types.size() != n) vocab_.types.assign(n, kTokenNormal);
    for (size_t i = 0; i < n; ++i) token_to_id_.emplace(vocab_.tokens[i], static_cast<int32_t>(i));
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      auto it = token_to_id_.find(buf);
      if (it != token_to_id_.end()) {
        byte_token_[b] = it->second;
      } else {
        auto single = token_to_id_.find(std::string(1, static_cast<char>(b)));
        byte_token_[b] = single != token_to_id_.end() ? single->second : vocab_.unk_id;
      }
    }
  }

  std::string kind() const override { return "spm"; }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> out;
    if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
    if (text.empty()) return out;
    std::string s;
    s.reserve(text.size() * 3 / 2 + 4);
    if (vocab_.add_space_prefix) s += kSpace;
    for (char c : text) {
      if (c == ' ')
        s += kSpace;
      else
        s += c;
    }
    tokenize(s, out);
    return out;
  }

  std::string piece(int32_t id, int32_t prev) const override {
    if (id < 0 || id >= vocab_size()) return "";
    const int32_t type = vocab_.types[id];
    if (type == kTokenControl || type == kTokenUnused) return "";
    const std::string& t = vocab_.tokens[id];
    if (type == kTokenByte) {
      unsigned b = 0;
      if (std::sscanf(t.c_str(), "<0x%2X>", &b) == 1) return std::string(1, static_cast<char>(b));
    }
    std::string out;
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, kSpace.size(), kSpace) == 0) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += t[i++];
      }
    }
    // The space prefixed at encode time is not part of the text.
    if ((prev == vocab_.bos_id || prev < 0) && vocab_.add_space_prefix && !out.empty() && out[0] == ' ')
      out.erase(0, 1);
    return out;
  }

 private:
  struct Symbol {
    int prev, next;
    size_t start, len;  // byte range in the text; len 0 once merged away
  };
  struct Bigram {
    int left, right;
    float score;
    size_t len;
    bool operator<(const Bigram& o) const {  // max-heap: higher score, then leftmost
      return score < o.score || (score == o.score && left > o.left);
    }
  };

  void tokenize(const std::string& s, std::vector<int32_t>& out) const {
    std::vector<Symbol> sym;
    for (size_t off = 0; off < s.size();) {
      const size_t len = std::min<size_t>(utf8_len(static_cast<unsigned char>(s[off])), s.size() - off);
      const int idx = static_cast<int>(sym.size());
      sym.push_back({idx - 1, off + len == s.size() ? -1 : idx + 1, off, len});
      off += len;
    }
    std::priority_queue<Bigram> queue;
    auto try_add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      const std::string_view text(s.data() + sym[l].start, sym[l].len + sym[r].len);
      auto it = token_to_id_.find(text);
      if (it == token_to_id_.end()) return;
      queue.push({l, r, vocab_.scores[it->second], text.size()});
    };
    for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& L = sym[b.left];
      Symbol& R = sym[b.right];
      if (L.len == 0 || R.len == 0 || L.len + R.len != b.len) continue;  // stale
      L.len += R.len;
      R.len = 0;
      L.next = R.next;
      if (R.next >= 0) sym[R.next].prev = b.left;
      try_add(L.prev, b.left);
      try_add(b.left, L.next);
    }
    // Every merge produced a vocabulary token, so a final symbol is either a
    // token or a single character the vocabulary lacks: that one falls back
    // to its UTF-8 bytes.
    for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
      const std::string_view text(s.data() + sym[i].start, sym[i].len);
      if (auto it = token_to_id_.find(text); it != token_to_id_.end())
        out.push_back(it->second);
      else
        for (unsigned char c : text) out.push_back(byte_token_[c]);
    }
  }

  // Keys view the strings in vocab_.tokens, which never change after construction.
  std::unordered_map<std::string_view, int32_t> token_to_id_;
  int32_t byte_token_[256];
};

}  // namespace

std::shared_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) { return std::make_shared<SpmTokenizer>(std::move(vocab)); }

}  // namespace shrink
