// Tokenizers. Every tokenizer shrink reads is reduced to a Vocab (the token
// strings, scores and types that GGUF stores) plus an algorithm:
//   - "llama": SentencePiece-style BPE by merge scores with byte fallback
//     (llama2.c tokenizer.bin, GGUF SPM vocabularies), as llama.cpp runs it;
//   - "gpt2":  byte-level BPE by merge rank (vocab.json + merges.txt,
//     tokenizer.json, GGUF gpt2 vocabularies);
//   - "sentencepiece": libsentencepiece on a tokenizer.model (its Vocab is
//     exported too, so the model can be written to GGUF).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shrink {

// GGUF token types (llama.cpp's llama_token_type).
enum TokenType : int32_t {
  kTokenUndefined = 0, kTokenNormal = 1, kTokenUnknown = 2, kTokenControl = 3,
  kTokenUserDefined = 4, kTokenUnused = 5, kTokenByte = 6
};

struct Vocab {
  std::string model;                // "llama" or "gpt2" (GGUF tokenizer.ggml.model)
  std::vector<std::string> tokens;  // SPM tokens use U+2581 for spaces, GPT-2 tokens the byte-to-unicode map
  std::vector<float> scores;        // SPM merge scores (empty for gpt2)
  std::vector<int32_t> types;       // TokenType per token
  std::vector<std::string> merges;  // gpt2: "a b" pairs in rank order
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = true;
  bool add_space_prefix = true;  // SPM: prepend a space to the text before encoding
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // The bytes of token `id` as they appear in text; `prev` is the token before
  // it (-1 at the start) so SPM can drop the space it prefixed after BOS.
  virtual std::string piece(int32_t id, int32_t prev) const = 0;
  std::string decode(const std::vector<int32_t>& ids) const;
  const Vocab& vocab() const { return vocab_; }
  int vocab_size() const { return static_cast<int>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  virtual std::string kind() const = 0;

 protected:
  Vocab vocab_;
};

// Builds the tokenizer for a Vocab ("llama" -> SPM-BPE, "gpt2" -> byte-level BPE).
std::shared_ptr<Tokenizer> make_tokenizer(Vocab vocab);

// Loaders (each throws shrink::Error naming the file on malformed input).
// llama2.c tokenizer.bin; vocab_size comes from the model header.
Vocab load_llama2c_vocab(const std::string& path, int vocab_size);
std::shared_ptr<Tokenizer> load_sentencepiece(const std::string& path);  // tokenizer.model
Vocab load_gpt2_vocab(const std::string& vocab_json, const std::string& merges_txt);
Vocab load_tokenizer_json(const std::string& path);  // HF tokenizer.json (BPE models)

// Finds and loads the tokenizer that belongs to a model file or directory:
// an explicit `tokenizer_path` wins; otherwise files beside the model.
std::shared_ptr<Tokenizer> load_tokenizer_file(const std::string& path, int vocab_size_hint);

}  // namespace shrink

namespace shrink {
// The vocabulary stored in a GGUF file's tokenizer.ggml.* metadata.
Vocab load_gguf_vocab(const std::string& path);
}  // namespace shrink
