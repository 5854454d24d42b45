// The GPT-2 training graph (train/gpt2_graph.h): its logits equal
// Transformer::forward's, every parameter's gradient matches finite
// differences, one layer overfits a batch, a trained model saved as GGUF loads
// in Transformer with the graph's logits, a resumed run equals an
// uninterrupted one, and LoRA / fake quantization / taps / every-k-th-layer
// students cover GPT-2's Linears. No ../shared needed: models are random.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/cpu.h"
#include "core/error.h"
#include "grad_check.h"
#include "io/model_file.h"
#include "model/transformer.h"
#include "test_util.h"
#include "train_fixtures.h"
#include "train/fake_quant.h"
#include "train/gpt2_graph.h"
#include "train/lora.h"
#include "train/losses.h"
#include "train/student_init.h"
#include "train/trainer.h"

namespace shrink::train {
namespace {

ModelConfig gpt2_config(int dim, int heads, int hidden, int layers, int vocab, int max_seq, bool tied) {
  ModelConfig c;
  c.arch = Arch::GPT2;
  c.dim = dim, c.n_heads = heads, c.n_kv_heads = heads, c.hidden_dim = hidden, c.n_layers = layers;
  c.vocab_size = vocab, c.max_seq_len = max_seq, c.tied_embeddings = tied;
  c.validate("test gpt2");
  return c;
}

// Every parameter (norms and biases too) uniform in ±amp, so no term of the graph hides behind a 0 or a 1.
TransformerParams random_gpt2(const ModelConfig& c, uint64_t seed, float amp) {
  TransformerParams p = TransformerParams::random(c, seed);
  for (Parameter* q : p.all()) {
    const Tensor r = test::random_tensor(q->value.shape, seed++, -amp, amp);
    std::copy(r.f32(), r.f32() + r.numel(), q->value.f32());
  }
  return p;
}

// Transformer's logits of each sequence (fresh cache), concatenated: the graph's layout.
std::vector<float> transformer_logits(Transformer& t, const std::vector<int32_t>& tokens, int64_t seq_len) {
  std::vector<float> out;
  for (size_t s = 0; s < tokens.size(); s += size_t(seq_len)) {
    const std::vector<float> l = shrink::test::all_logits(t, {tokens.begin() + s, tokens.begin() + s + seq_len});
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

double max_abs_diff(const float* a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < b.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return worst;
}

TEST(Gpt2Graph, LogitsEqualTransformerForward) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied head" : "separate head");
    // Odd sizes: dim 48 in 3 heads of 16, FFN 100, vocab 67.
    TransformerParams p = random_gpt2(gpt2_config(48, 3, 100, 2, 67, 16, tied), 3, 0.2f);
    const int64_t seq = 11;
    const std::vector<int32_t> tokens = test::random_tokens(3 * seq, 67, 4);  // three sequences
    Graph g;
    Var logits = gpt2_logits(g, p, tokens, seq);
    ModelFile m = p.to_model_file();
    Transformer t(m);
    const std::vector<float> ref = transformer_logits(t, tokens, seq);
    ASSERT_EQ(size_t(logits->value.numel()), ref.size());
    const double worst = max_abs_diff(logits->v(), ref);
    std::printf("gpt2 graph vs Transformer (%s head): max |logit diff| %.3g\n", tied ? "tied" : "separate", worst);
    EXPECT_LT(worst, 1e-4);
    // model_logits dispatches here.
    Graph g2;
    Var same = model_logits(g2, p, tokens, seq);
    EXPECT_EQ(std::memcmp(same->v(), logits->v(), ref.size() * 4), 0);
  }
}

// Every entry of every parameter: token and position embeddings, LayerNorm
// weights and biases, the fused qkv weight and bias, the output projection,
// the MLP weights and biases, the final norm, the head.
TEST(Gpt2Graph, GradientsMatchFiniteDifferences) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied head" : "separate head");
    TransformerParams model = random_gpt2(gpt2_config(8, 2, 12, 2, 11, 6, tied), 7, 0.5f);
    const int64_t seq = 5;
    const std::vector<int32_t> tokens = test::random_tokens(2 * seq + 1, 11, 3);
    const std::vector<int32_t> in(tokens.begin(), tokens.end() - 1), target(tokens.begin() + 1, tokens.end());
    std::vector<Parameter> ps;
    for (Parameter* p : model.all()) ps.push_back(*p);  // shares the tensors
    auto build = [&](Graph& g, std::vector<Var>&) { return cross_entropy(gpt2_logits(g, model, in, seq), target); };
    test::expect_grads_match(ps, build, test::Tolerance{1e-2f, 2e-2, 2e-3});
  }
}

using fixtures::small_options;
std::vector<int32_t> stream(int64_t n, int vocab, uint64_t seed) { return fixtures::learnable_stream(n, vocab, seed); }

TEST(Gpt2Graph, OneLayerOverfitsATinyBatch) {
  const std::vector<int32_t> data = stream(17, 64, 9);  // one window of 16 + 1: every batch is this one
  TransformerParams p = TransformerParams::random(gpt2_config(32, 4, 64, 1, 64, 32, true), 1);
  Trainer t(p, data, {}, fixtures::overfit_options());
  const auto [first, last] = fixtures::run_first_last_loss(t);
  EXPECT_NEAR(first, std::log(64.0), 0.3);
  EXPECT_LT(last, 0.05) << "first loss " << first;
}

// Trained a few steps (biases and norms no longer 0 and 1), written as GGUF,
// loaded by load_model + Transformer: the graph's logits.
TEST(Gpt2Graph, SavedGgufLoadsWithTheGraphsLogits) {
  const std::string dir = shrink::test::temp_dir("gpt2_save");
  const std::vector<int32_t> data = stream(2000, 64, 1);
  for (bool tied : {true, false}) {
    TransformerParams p = TransformerParams::random(gpt2_config(32, 4, 64, 2, 64, 32, tied), 2);
    Trainer t(p, data, {}, small_options());
    t.run(-1, nullptr, nullptr);
    EXPECT_NE(p.blocks[0].bqkv.value.f32()[0], 0.0f);
    ModelFile m = p.to_model_file();
    const std::string path = dir + (tied ? "/tied.gguf" : "/untied.gguf");
    save_gguf_model(m, path);
    const ModelFile back = load_model(path, {});
    EXPECT_EQ(back.config.arch, Arch::GPT2);
    Transformer model(back);
    const std::vector<int32_t> tokens = stream(2 * 16, 64, 7);
    Graph g;
    Var logits = gpt2_logits(g, p, tokens, 16);
    EXPECT_LT(max_abs_diff(logits->v(), transformer_logits(model, tokens, 16)), 1e-4) << path;
    // from_model_file reads back the same parameters.
    TransformerParams again = TransformerParams::from_model_file(back);
    ASSERT_EQ(again.all().size(), p.all().size());
    for (size_t k = 0; k < p.all().size(); ++k) {
      EXPECT_EQ(again.all()[k]->name, p.all()[k]->name);
      EXPECT_EQ(std::memcmp(again.all()[k]->value.data, p.all()[k]->value.data, p.all()[k]->value.nbytes()), 0);
    }
  }
}

TEST(Gpt2Graph, ResumeEqualsUninterrupted) {
  set_num_threads(1);
  const std::string dir = shrink::test::temp_dir("gpt2_resume");
  const ModelConfig c = gpt2_config(32, 4, 48, 2, 64, 32, false);
  const std::vector<int32_t> data = stream(3000, 64, 1), valid = stream(300, 64, 2);
  TransformerParams whole = TransformerParams::random(c, 1);
  Trainer a(whole, data, valid, small_options());
  a.run(-1, nullptr, nullptr);
  TrainOptions o = small_options(dir);
  o.ckpt_every = 4;
  {
    TransformerParams first = TransformerParams::random(c, 1);
    Trainer b(first, data, valid, o);
    b.run(4, nullptr, nullptr);  // "killed" after the checkpoint of step 4
  }
  TransformerParams resumed = TransformerParams::random(c, 1);
  Trainer r(resumed, data, valid, o);
  r.restore(r.checkpoint_path());
  EXPECT_EQ(r.state().step, 4);
  r.run(-1, nullptr, nullptr);
  set_num_threads(0);
  const auto x = whole.all(), y = resumed.all();
  ASSERT_EQ(x.size(), y.size());
  for (size_t k = 0; k < x.size(); ++k)
    EXPECT_EQ(std::memcmp(x[k]->value.data, y[k]->value.data, x[k]->value.nbytes()), 0) << x[k]->name;
}

TEST(Gpt2Graph, ParameterListsAndRoles) {
  TransformerParams p = TransformerParams::random(gpt2_config(16, 2, 24, 2, 20, 8, false), 1);
  // tok, pos, 12 per block, out_norm + bias, head.
  EXPECT_EQ(p.all().size(), 2u + 2 * 12 + 3);
  std::vector<std::string> lin;
  for (Parameter* q : p.linears()) lin.push_back(q->name);
  EXPECT_EQ(lin, (std::vector<std::string>{"blk.0.attn_qkv.weight", "blk.0.attn_output.weight", "blk.0.ffn_up.weight",
                                           "blk.0.ffn_down.weight", "blk.1.attn_qkv.weight", "blk.1.attn_output.weight",
                                           "blk.1.ffn_up.weight", "blk.1.ffn_down.weight", "output.weight"}));
  EXPECT_EQ(linear_role("blk.3.attn_qkv.weight"), "qkv");
  EXPECT_EQ(p.count(), p.cfg.parameter_count());
  for (Parameter* q : p.all())  // weight decay on matrices (incl. the position table), not on norms and biases
    EXPECT_EQ(q->decay, q->value.ndim() == 2) << q->name;
  EXPECT_EQ(parse_lora_targets("all", Arch::GPT2), (std::vector<std::string>{"qkv", "o", "up", "down"}));
  EXPECT_THROW(parse_lora_targets("q,v", Arch::GPT2), Error);
  EXPECT_THROW(LoraAdapters(p, LoraConfig{}), Error);  // the default (Llama) roles q, k, v, gate are not GPT-2's
  Graph g;
  EXPECT_THROW(gpt2_logits(g, p, std::vector<int32_t>(2 * 9, 1), 9), Error);  // 9 > 8 learned positions
}

// LoRA on every GPT-2 Linear with the base frozen: adapter gradients by finite
// differences, zero B leaves the logits, merging reproduces the adapted logits.
TEST(Gpt2Graph, LoraOnTheFusedQkvAndTheMlp) {
  TransformerParams model = random_gpt2(gpt2_config(8, 2, 12, 2, 11, 8, false), 5, 0.5f);
  LoraAdapters lora(model, LoraConfig{2, 3.0f, parse_lora_targets("all", Arch::GPT2), 7});
  EXPECT_EQ(lora.size(), 8u);
  const int64_t seq = 4;
  const std::vector<int32_t> in = test::random_tokens(2 * seq, 11, 3), target = test::random_tokens(2 * seq, 11, 4);
  const GraphOptions opt{nullptr, true, &lora, nullptr};
  Graph g0;
  Var base = gpt2_logits(g0, model, in, seq), adapted = gpt2_logits(g0, model, in, seq, opt);
  for (int64_t i = 0; i < base->value.numel(); ++i) ASSERT_EQ(base->v()[i], adapted->v()[i]);  // B = 0
  uint64_t seed = 100;
  for (Parameter* p : lora.params()) {
    const Tensor r = test::random_tensor(p->value.shape, seed++, -0.5f, 0.5f);
    std::copy(r.f32(), r.f32() + r.numel(), p->value.f32());
  }
  std::vector<Parameter> ps;
  for (Parameter* p : lora.params()) ps.push_back(*p);
  zero_grad(model.all());
  test::expect_grads_match(
      ps, [&](Graph& g, std::vector<Var>&) { return cross_entropy(gpt2_logits(g, model, in, seq, opt), target); },
      test::Tolerance{1e-2f, 2e-2, 2e-3});
  for (Parameter* p : model.all())
    for (int64_t i = 0; i < p->numel(); ++i) ASSERT_EQ(p->grad.f32()[i], 0.0f) << p->name << " is not frozen";
  Graph g1;
  const Tensor with_adapters = gpt2_logits(g1, model, in, seq, opt)->value;
  lora.merge_into(model);
  Graph g2;
  Var merged = gpt2_logits(g2, model, in, seq);
  for (int64_t i = 0; i < merged->value.numel(); ++i) EXPECT_NEAR(merged->v()[i], with_adapters.f32()[i], 1e-4);
}

// Taps give the fused projection's q, k, v columns; fake quantization covers
// the fused qkv by default; an every-2nd-layer student keeps GPT-2's extra tensors.
TEST(Gpt2Graph, TapsFakeQuantAndStudent) {
  TransformerParams model = random_gpt2(gpt2_config(16, 2, 24, 4, 20, 8, true), 9, 0.3f);
  const std::vector<int32_t> in = test::random_tokens(8, 20, 1);
  std::vector<BlockTaps> taps;
  GraphOptions o;
  o.taps = &taps;
  Graph g;
  gpt2_logits(g, model, in, 8, o);
  ASSERT_EQ(taps.size(), 4u);
  EXPECT_EQ(taps[1].q->value.shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(taps[1].v->value.shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(taps[3].out->value.shape, (std::vector<int64_t>{8, 16}));

  FakeQuant fq(model, FakeQuantConfig{});
  EXPECT_TRUE(fq.covers("blk.0.attn_qkv.weight"));
  EXPECT_TRUE(fq.covers("blk.2.ffn_down.weight"));
  GraphOptions q;
  q.fake_quant = &fq;
  Graph g2;
  Var quantized = gpt2_logits(g2, model, in, 8, q);
  TransformerParams rounded = clone_params(model);
  fq.quantize_in_place(rounded);
  Graph g3;
  Var plain = gpt2_logits(g3, rounded, in, 8);
  for (int64_t i = 0; i < plain->value.numel(); ++i) EXPECT_NEAR(plain->v()[i], quantized->v()[i], 1e-5);

  TransformerParams s = student_every_kth_layer(model, 2);
  EXPECT_EQ(s.cfg.n_layers, 2);
  EXPECT_EQ(s.all().size(), 2u + 2 * 12 + 2);
  EXPECT_EQ(s.blocks[1].bqkv.name, "blk.1.attn_qkv.bias");
  EXPECT_EQ(std::memcmp(s.blocks[1].bqkv.value.data, model.blocks[2].bqkv.value.data, model.blocks[2].bqkv.value.nbytes()),
            0);
  EXPECT_NE(s.pos_embd.value.data, model.pos_embd.value.data);  // a deep copy
  check_model_tensors(s.to_model_file());
}

}  // namespace
}  // namespace shrink::train
