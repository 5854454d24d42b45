// Perplexity with llama.cpp's protocol (llama-perplexity), and KL-divergence /
// top-1 agreement against a base model on the same windows.
//
// Protocol: the text is tokenized once (with BOS); it is cut into
// back-to-back windows of n_ctx tokens (a trailing partial window is
// dropped; `chunks` keeps the first K); each window's first token is replaced
// by BOS; the logits at positions n_ctx/2 .. n_ctx-2 are scored against the
// next token. PPL = exp(mean NLL); its ± is the standard error propagated
// through exp. `all_positions` scores positions 0 .. n_ctx-2 instead.
// The model and the base each get their own KV-cache type, so a model can be
// compared with itself under an int8 vs an f32 cache.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/transformer.h"

namespace shrink::eval {

struct PerplexityOptions {
  int n_ctx = 512;
  int chunks = -1;  // -1 = all windows
  bool all_positions = false;
  int32_t bos_id = 1;
  KvType kv_cache = KvType::F32;       // the model's KV cache
  KvType base_kv_cache = KvType::F32;  // the base model's
  // Tokens per forward call (llama.cpp's -ub); 0 = the whole window at once.
  // Quantized weights multiply Q8-rounded activations below 16..128 rows
  // (kernels/qdot.h qmatmul), as at decode; a whole window takes the f32 path.
  int ubatch = 0;
};

struct PerplexityResult {
  double ppl = 0, ppl_err = 0;  // perplexity and its standard error
  double nll = 0;               // mean negative log-likelihood (nats)
  int64_t scored = 0;           // tokens scored
  int chunks = 0;
  // Against a base model (when given):
  bool has_base = false;
  double base_ppl = 0;
  double kld = 0, kld_err = 0;  // mean KL(base || this) per token, and its standard error
  double top1 = 0;              // fraction of positions where both argmaxes agree
  double seconds = 0;
  std::vector<float> nll_per_token;  // in scoring order
};

// progress(chunk_done, chunks_total, running_ppl) is called after each window.
using Progress = std::function<void(int, int, double)>;

PerplexityResult perplexity(Transformer& model, const std::vector<int32_t>& tokens, const PerplexityOptions& opt,
                            Transformer* base = nullptr, const Progress& progress = {});

}  // namespace shrink::eval
