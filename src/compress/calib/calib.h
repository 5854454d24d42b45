// The calibration driver (DESIGN.md §2 "Calibration is one driver, many
// methods"). GPTQ, AWQ, importance matrices, SmoothQuant, SparseGPT, Wanda and
// ASVD all follow one loop, written once here:
//
//   hidden = embed(calibration sequences)
//   for each block i:
//     for each group of its Linears, in forward order ({q,k,v}, {o}, {gate,up}, {down}):
//       run block i on every sequence, showing the group's inputs to method.observe
//       method.rewrite(group)             (quantize / prune / factorize it)
//     run block i again with the rewritten weights: hidden = its outputs
//   optionally the output head, observed on the final normed states.
//
// Rewriting group by group ("true sequential" in GPTQ's reference code) lets
// each group see inputs produced by the already-compressed groups before it.
// Only the hidden states of the calibration set and one block's statistics are
// held at a time; the weights stay wherever the model keeps them (an mmap).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "model/transformer.h"

namespace shrink::calib {

// Calibration token sequences: back-to-back windows of `seq_len` tokens from
// the start of the text, each starting with BOS (as perplexity windows do).
struct CalibSet {
  std::vector<std::vector<int32_t>> seqs;
  int64_t tokens() const;
};
// Uses min(n_tokens, what the text holds) tokens; throws if the text holds
// less than one window.
CalibSet make_calib_set(const Tokenizer& tok, const std::string& text, int64_t n_tokens, int seq_len);

// What a compression method implements for the driver.
class BlockMethod {
 public:
  virtual ~BlockMethod() = default;
  // Called once per group before its observation pass.
  virtual void begin_group(Transformer& model, int layer, const std::vector<Linear*>& group) {
    (void)model, (void)layer, (void)group;
  }
  // x: n rows of l.in_features() values: the input of `l` for n tokens.
  virtual void observe(const Linear& l, const float* x, int64_t n) = 0;
  // Rewrites the group's weights (layer == n_layers: the output head).
  virtual void rewrite(Transformer& model, int layer, const std::vector<Linear*>& group) = 0;
  // Whether the output head is observed and rewritten too.
  virtual bool wants_head() const { return false; }
};

// The Linears of block `layer`, grouped by shared input, in forward order.
std::vector<std::vector<Linear*>> block_groups(Transformer& model, int layer);

struct DriverOptions {
  // progress(layer, n_layers, what) before each group's work.
  std::function<void(int, int, const std::string&)> progress;
};

void run_blockwise(Transformer& model, const CalibSet& calib, BlockMethod& method, const DriverOptions& opt = {});

}  // namespace shrink::calib
