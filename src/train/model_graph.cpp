#include "train/model_graph.h"

#include "core/error.h"
#include "train/gpt2_graph.h"
#include "train/llama_graph.h"

namespace shrink::train {

Var model_logits(Graph& g, TransformerParams& p, const std::vector<int32_t>& tokens, int64_t seq_len,
                 const GraphOptions& opt) {
  switch (p.cfg.arch) {
    case Arch::Llama: return llama_logits(g, p, tokens, seq_len, opt);
    case Arch::GPT2: return gpt2_logits(g, p, tokens, seq_len, opt);
  }
  fail("model_logits: no training graph for architecture ", arch_name(p.cfg.arch));
}

}  // namespace shrink::train
