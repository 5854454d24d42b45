// Internal to io/: constructors of the concrete tokenizers behind make_tokenizer().
#pragma once
#include <memory>

#include "io/tokenizer.h"

namespace shrink {
std::shared_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);
std::shared_ptr<Tokenizer> make_gpt2_tokenizer(Vocab vocab);
}  // namespace shrink
