// A control for the stories260K QAT figures of docs/distillation.md (issue 6,
// must-show 4). The QAT-vs-RTN driver that used to live here
// (QatExperiment.DISABLED_QatBeatsRtn) is superseded by `shrink qat`, which
// trains toward the real format and writes it (docs/distillation.md, "shrink qat").
//   ./build/tests/shrink_tests --gtest_also_run_disabled_tests --gtest_filter='QatExperiment.*'
// Environment: SHRINK_QAT_MODEL (under ../shared/assets, default models/stories260K/stories260K.bin).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "core/file.h"
#include "test_util.h"
#include "train/llama_graph.h"
#include "train/losses.h"

namespace shrink::train {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// text cut at the first newline at or after `at`.
size_t newline_after(const std::string& text, size_t at) {
  const size_t nl = text.find('\n', std::min(at, text.size()));
  return nl == std::string::npos ? text.size() : nl + 1;
}

// A control for reading the figures above: on this text the f32 model is
// out of its domain (TinyStories vs Gutenberg) and over-confident, so a
// *smoother* model scores better. Its own logits divided by T (output norm
// scaled by 1/T) at a few T, PPL over all positions of 256-token windows of
// the held-out text (the training graph, not eval::perplexity's protocol).
TEST(QatExperiment, DISABLED_TemperatureControl) {
  SHRINK_REQUIRE_ASSET(path, env_or("SHRINK_QAT_MODEL", "models/stories260K/stories260K.bin"));
  SHRINK_REQUIRE_ASSET(text_path, "text/gutenberg/valid.txt");
  const ModelFile f = load_model(path, test::with_tokenizer());
  const std::string text = read_text_file(text_path);
  const std::vector<int32_t> tokens = f.tokenizer->encode(text.substr(newline_after(text, text.size() - 100000)), true);
  const int64_t seq = 256, windows = std::min<int64_t>(40, int64_t(tokens.size() - 1) / seq);
  for (float T : {1.0f, 1.1f, 1.25f, 1.5f}) {
    TransformerParams p = TransformerParams::from_model_file(f);
    for (int64_t i = 0; i < p.out_norm.numel(); ++i) p.out_norm.value.f32()[i] /= T;
    double nll = 0;
    for (int64_t w = 0; w < windows; ++w) {
      const std::vector<int32_t> in(tokens.begin() + w * seq, tokens.begin() + (w + 1) * seq),
          target(tokens.begin() + w * seq + 1, tokens.begin() + (w + 1) * seq + 1);
      Graph g;
      nll += cross_entropy(llama_logits(g, p, in, seq, GraphOptions{nullptr, true}), target)->v()[0];
    }
    std::printf("f32 logits / %.2f: PPL %.4f (all positions, %lld windows of %lld)\n", T, std::exp(nll / windows),
                (long long)windows, (long long)seq);
  }
}

}  // namespace
}  // namespace shrink::train
