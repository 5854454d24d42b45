#include "io/tokenizer.h"

#include <cstring>

#include "core/error.h"
#include "core/file.h"
#include "io/tokenizer_internal.h"

namespace shrink {

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  int32_t prev = -1;
  for (int32_t id : ids) {
    out += piece(id, prev);
    prev = id;
  }
  return out;
}

std::shared_ptr<Tokenizer> make_tokenizer(Vocab vocab) {
  SHRINK_CHECK(!vocab.tokens.empty(), "tokenizer has an empty vocabulary");
  if (vocab.model == "llama") return make_spm_tokenizer(std::move(vocab));
  if (vocab.model == "gpt2") return make_gpt2_tokenizer(std::move(vocab));
  fail("unsupported tokenizer model '", vocab.model, "' (supported: llama, gpt2)");
}

Vocab load_llama2c_vocab(const std::string& path, int vocab_size) {
  auto file = MappedFile::open(path);
  ByteReader r(file->data(), file->size(), path);
  Vocab v;
  v.model = "llama";
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  const int32_t max_len = r.read<int32_t>();
  SHRINK_CHECK(max_len > 0 && max_len < (1 << 16), path, ": bad max_token_length ", max_len,
               " (is this a llama2.c tokenizer.bin?)");
  SHRINK_CHECK(vocab_size > 0, path, ": vocabulary size unknown");
  v.tokens.reserve(vocab_size);
  for (int i = 0; i < vocab_size; ++i) {
    const float score = r.read<float>();
    const int32_t len = r.read<int32_t>();
    SHRINK_CHECK(len >= 0 && len <= max_len, path, ": token ", i, " has length ", len, " > max ", max_len);
    std::string text = r.read_string(static_cast<uint64_t>(len));
    int32_t type = kTokenNormal;
    unsigned byte = 0;
    char tail = 0;
    if (i == 0) {
      text = "<unk>";
      type = kTokenUnknown;
    } else if (i == 1 || i == 2) {
      text = i == 1 ? "<s>" : "</s>";
      type = kTokenControl;
    } else if (text.empty()) {
      type = kTokenControl;
    } else if (text.size() == 6 && std::sscanf(text.c_str(), "<0x%2X%c", &byte, &tail) == 2 && tail == '>') {
      type = kTokenByte;
    }
    // llama2.c's export turned SentencePiece's U+2581 into spaces; put it back
    // (as llama.cpp's llama2.c converter does) so the vocab is a normal SPM one.
    std::string escaped;
    for (char c : text) escaped += (c == ' ') ? std::string("\xe2\x96\x81") : std::string(1, c);
    v.tokens.push_back(std::move(escaped));
    v.scores.push_back(score);
    v.types.push_back(type);
  }
  return v;
}

}  // namespace shrink
