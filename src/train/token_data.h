// Training data as token ids: a text file tokenized once and cached, a
// train/validation split, and deterministic random windows drawn from a seed.
//
// The cache is keyed by the identity of the text (canonical path, size,
// modification time) and of the tokenizer (a hash of its vocabulary, merges
// and flags), so a second run over the same file with the same tokenizer reads
// the ids back instead of re-tokenizing, and any change to either re-tokenizes.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace shrink::train {

// A stable 64-bit hash of everything that changes how `tok` encodes text.
uint64_t tokenizer_fingerprint(const Tokenizer& tok);

// Where token caches go by default: $SHRINK_CACHE_DIR, else
// $XDG_CACHE_HOME/shrink/tokens, else ~/.cache/shrink/tokens.
std::string default_token_cache_dir();

struct TokenizeProgress {
  int64_t bytes_done = 0, bytes_total = 0, tokens = 0;
};

struct TokenFile {
  std::vector<int32_t> tokens;
  uint64_t key = 0;        // cache key (text identity × tokenizer fingerprint)
  bool from_cache = false;
  std::string cache_path;  // "" when caching is off
};

// Tokenizes the text file `path` (BOS first when the tokenizer adds one), or
// reads the ids from the cache in `cache_dir` ("" = no caching). The text is
// cut at line ends into ~1 MiB chunks encoded in parallel (SentencePiece
// prefixes one space per chunk: one extra "▁" per MiB, which training does not
// notice). `progress` is called after each chunk, in order.
TokenFile tokenize_file(const std::string& path, const Tokenizer& tok, const std::string& cache_dir,
                        const std::function<void(const TokenizeProgress&)>& progress = {});

// The last `fraction` of `tokens` (cut at a token) becomes validation.
struct TokenSplit {
  std::vector<int32_t> train, valid;
};
TokenSplit split_tail(std::vector<int32_t> tokens, double fraction);

// One batch of `batch` windows of seq_len + 1 tokens, laid out as inputs
// (tokens 0..seq_len-1 of each window) and targets (tokens 1..seq_len).
struct Batch {
  std::vector<int32_t> inputs, targets;  // batch * seq_len each
};

// Random windows: window i's start is a hash of (seed, counter++), uniform
// over every start position. The whole state is the counter, so a checkpoint
// stores one integer and a resumed run draws the same windows.
class WindowSampler {
 public:
  WindowSampler(const std::vector<int32_t>* tokens, int64_t seq_len, uint64_t seed);
  Batch next(int64_t batch);
  uint64_t counter() const { return counter_; }
  void set_counter(uint64_t c) { counter_ = c; }
  int64_t start_positions() const;  // number of distinct windows

 private:
  const std::vector<int32_t>* tokens_;
  int64_t seq_len_;
  uint64_t seed_, counter_ = 0;
};

// Validation windows: consecutive, non-overlapping windows of seq_len + 1
// tokens from the start of `tokens` (stride seq_len), as many as fit in
// `max_tokens` scored tokens (0 = all). The same set every evaluation.
std::vector<Batch> validation_batches(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t batch,
                                      int64_t max_tokens);

}  // namespace shrink::train
