// libsentencepiece-backed tokenizer for tokenizer.model (placeholder).
#include "core/error.h"
#include "io/tokenizer.h"

namespace shrink {
std::shared_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  fail(path, ": SentencePiece tokenizer.model is not supported yet");
}
}  // namespace shrink
