// libsentencepiece-backed tokenizer for a tokenizer.model: encoding is
// SentencePiece's own (the reference the SPM tokenizer is tested against),
// and the vocabulary is exported as a Vocab so the model can be written to
// GGUF the way llama.cpp's converter does (pieces, scores, piece types).
#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "io/tokenizer.h"

namespace shrink {

namespace {

const std::string kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

// A minimal protobuf wire-format reader: the library's API cannot tell
// user-defined pieces from normal ones, nor expose add_dummy_prefix, but the
// serialized ModelProto holds both (sentencepiece_model.proto:
// ModelProto{1: repeated SentencePiece{1: piece, 2: score, 3: type},
// 3: NormalizerSpec{3: add_dummy_prefix}}).
class ProtoReader {
 public:
  ProtoReader(std::string_view data, const std::string& path) : d_(data), path_(path) {}
  bool done() const { return pos_ >= d_.size(); }
  // Reads a field key; returns {field number, wire type}.
  std::pair<uint32_t, uint32_t> key() {
    const uint64_t k = varint();
    return {static_cast<uint32_t>(k >> 3), static_cast<uint32_t>(k & 7)};
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      SHRINK_CHECK(pos_ < d_.size(), path_, ": truncated SentencePiece model");
      const auto b = static_cast<unsigned char>(d_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (b < 0x80) return v;
    }
    fail(path_, ": malformed SentencePiece model (varint)");
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    SHRINK_CHECK(n <= d_.size() - pos_, path_, ": truncated SentencePiece model");
    const std::string_view s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  float fixed32_float() {
    SHRINK_CHECK(4 <= d_.size() - pos_, path_, ": truncated SentencePiece model");
    float f;
    std::memcpy(&f, d_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void skip(uint32_t wire) {
    if (wire == 0) varint();
    else if (wire == 1) advance(8);
    else if (wire == 2) bytes();
    else if (wire == 5) advance(4);
    else fail(path_, ": malformed SentencePiece model (wire type ", wire, ")");
  }

 private:
  void advance(size_t n) {
    SHRINK_CHECK(n <= d_.size() - pos_, path_, ": truncated SentencePiece model");
    pos_ += n;
  }
  std::string_view d_;
  size_t pos_ = 0;
  const std::string& path_;
};

struct ProtoInfo {
  std::vector<int32_t> types;  // SentencePiece's piece types (same numbers as GGUF's)
  bool add_dummy_prefix = true;
};

ProtoInfo read_proto_info(std::string_view model, const std::string& path) {
  ProtoInfo info;
  ProtoReader r(model, path);
  while (!r.done()) {
    const auto [field, wire] = r.key();
    if (field == 1 && wire == 2) {
      ProtoReader p(r.bytes(), path);
      int32_t type = kTokenNormal;  // the proto's default
      while (!p.done()) {
        const auto [f, w] = p.key();
        if (f == 3 && w == 0) type = static_cast<int32_t>(p.varint());
        else p.skip(w);
      }
      info.types.push_back(type);
    } else if (field == 3 && wire == 2) {
      ProtoReader n(r.bytes(), path);
      while (!n.done()) {
        const auto [f, w] = n.key();
        if (f == 3 && w == 0) info.add_dummy_prefix = n.varint() != 0;
        else n.skip(w);
      }
    } else {
      r.skip(wire);
    }
  }
  return info;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) {
    const auto status = sp_.Load(path);
    SHRINK_CHECK(status.ok(), path, ": cannot load SentencePiece model (", status.ToString(), ")");
    export_vocab(path);
  }

  std::string kind() const override { return "sentencepiece"; }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    SHRINK_CHECK(status.ok(), "SentencePiece encode failed: ", status.ToString());
    std::vector<int32_t> out;
    out.reserve(ids.size() + 1);
    if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  // As the SPM tokenizer (and llama.cpp) render a piece: U+2581 -> space,
  // <0xXX> -> the byte, control pieces -> nothing, and the space that
  // add_dummy_prefix put before the text dropped at the start.
  std::string piece(int32_t id, int32_t prev) const override {
    if (id < 0 || id >= vocab_size()) return "";
    if (sp_.IsControl(id) || sp_.IsUnused(id)) return "";
    const std::string p = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) {
      unsigned b = 0;
      if (std::sscanf(p.c_str(), "<0x%2X>", &b) == 1) return std::string(1, static_cast<char>(b));
    }
    std::string out;
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpace.size(), kSpace) == 0) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += p[i++];
      }
    }
    if ((prev < 0 || prev == vocab_.bos_id) && vocab_.add_space_prefix && !out.empty() && out[0] == ' ')
      out.erase(0, 1);
    return out;
  }

 private:
  void export_vocab(const std::string& path) {
    const int n = sp_.GetPieceSize();
    const ProtoInfo info = read_proto_info(sp_.serialized_model_proto(), path);
    SHRINK_CHECK(static_cast<int>(info.types.size()) == n, path, ": model has ", info.types.size(),
                 " pieces but SentencePiece reports ", n);
    Vocab& v = vocab_;
    // llama.cpp runs SentencePiece vocabularies as "llama" (score-ordered
    // BPE); exact for BPE-trained models, an approximation for unigram ones.
    v.model = "llama";
    v.tokens.reserve(n);
    for (int i = 0; i < n; ++i) {
      v.tokens.push_back(sp_.IdToPiece(i));
      v.scores.push_back(sp_.GetScore(i));
      const int32_t t = info.types[i];
      v.types.push_back(t >= kTokenNormal && t <= kTokenByte ? t : kTokenNormal);
    }
    v.bos_id = sp_.bos_id();
    v.eos_id = sp_.eos_id();
    v.unk_id = sp_.unk_id();
    v.pad_id = sp_.pad_id();
    v.add_bos = true;
    v.add_space_prefix = info.add_dummy_prefix;
  }

  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::shared_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  SHRINK_CHECK(file_exists(path), path, ": no such file");
  return std::make_shared<SentencePieceTokenizer>(path);
}

}  // namespace shrink
