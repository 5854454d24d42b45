// shrink's own committed demo model (models/shrink-kjv-3m.gguf, trained by
// `shrink train` on the KJV Bible: docs/training.md, "shrink's own model"):
// it loads from the source tree, its embedded tokenizer encodes exactly like
// the SentencePiece model it was trained with, and on held-out books it
// reaches a perplexity no random model of its shape comes near. Needs no
// ../shared: the model and the held-out text are committed.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/file.h"
#include "eval/perplexity.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_util.h"

namespace shrink {
namespace {

const std::string kSource = SHRINK_SOURCE_DIR;
const std::string kModel = kSource + "/models/shrink-kjv-3m.gguf";
const std::string kSpm = kSource + "/models/kjv-2k.model";
const std::string kHeldOut = kSource + "/data/kjv-heldout.txt";

TEST(KjvModel, CommittedFilesFitTheBudget) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel;
  EXPECT_LE(std::filesystem::file_size(kModel), 10u * 1000 * 1000);  // issue 6: ≤ 10 MB in the repo
  EXPECT_LE(std::filesystem::file_size(kHeldOut), 300u * 1024);
}

// The GGUF holds the vocabulary (pieces, scores, types) and is encoded by
// shrink's own SPM tokenizer; tokenizer.model goes through libsentencepiece.
// They must agree on every id of the held-out text (newlines are byte-fallback
// pieces, as spm_train never sees them).
TEST(KjvModel, EmbeddedTokenizerEncodesLikeSentencePiece) {
  const ModelFile f = load_model(kModel, test::with_tokenizer());
  const auto spm = load_sentencepiece(kSpm);
  const std::string text = read_text_file(kHeldOut);
  const std::vector<int32_t> a = f.tokenizer->encode(text, true), b = spm->encode(text, true);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a, b);
  EXPECT_EQ(f.tokenizer->decode(a), spm->decode(b));
}

// llama.cpp protocol, ctx 256, the first 16 windows of the held-out books
// (Joshua, Jonah, Mark: never trained on). The whole-file figure is in
// docs/training.md; a random model of the same shape is near the vocabulary
// size (2,048).
TEST(KjvModel, HeldOutPerplexityIsFarBelowARandomModel) {
  ModelFile f = load_model(kModel, test::with_tokenizer());
  const std::vector<int32_t> tokens = f.tokenizer->encode(read_text_file(kHeldOut), true);
  eval::PerplexityOptions o;
  o.n_ctx = 256;
  o.chunks = 16;
  Transformer trained(f);
  const double ppl = eval::perplexity(trained, tokens, o).ppl;
  const ModelFile rf = random_model(f.config, DType::F32, 1);
  Transformer random(rf);
  const double random_ppl = eval::perplexity(random, tokens, o).ppl;
  std::printf("held-out PPL (16 x 256): trained %.3f, random %.1f\n", ppl, random_ppl);
  EXPECT_LT(ppl, 30.0);
  EXPECT_GT(random_ppl, 1000.0);
}

}  // namespace
}  // namespace shrink
