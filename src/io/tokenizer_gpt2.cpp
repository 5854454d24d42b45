// GPT-2 byte-level BPE (placeholder: implemented by the tokenizer work).
#include "core/error.h"
#include "io/tokenizer_internal.h"

namespace shrink {
std::shared_ptr<Tokenizer> make_gpt2_tokenizer(Vocab) { fail("GPT-2 BPE tokenizer is not implemented yet"); }
Vocab load_gpt2_vocab(const std::string& vocab_json, const std::string&) {
  fail(vocab_json, ": GPT-2 BPE tokenizer is not implemented yet");
}
Vocab load_tokenizer_json(const std::string& path) { fail(path, ": tokenizer.json is not supported yet"); }
}  // namespace shrink
