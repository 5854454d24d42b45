// Training a factorized model (compress/lowrank's output: BASE.weight.lr_u /
// lr_v in place of BASE.weight): TransformerParams holds the two factors as
// parameters, the graph multiplies x·Vᵀ·Uᵀ as LowRankWeight does, and
// training, saving, student initialisation and `shrink distill --student`
// keep the factorization (issue 6: "start from a pruned or factorized shrink
// model"). No ../shared needed.
#include <gtest/gtest.h>

#include <fstream>

#include "grad_check.h"
#include "model/lowrank_weight.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_util.h"
#include "train/losses.h"
#include "train/model_graph.h"
#include "train/student_init.h"
#include "train/trainer.h"

namespace shrink::train {
namespace {

// Replaces the weights of `bases` by random factors of rank r (scaled like the weights).
void factorize_some(ModelFile& m, const std::vector<std::string>& bases, int64_t r, uint64_t seed) {
  for (const std::string& base : bases) {
    const Tensor w = m.get(base + ".weight");
    m.tensors.erase(base + ".weight");
    m.tensors[lowrank_u_name(base)] = test::random_tensor({w.dim(0), r}, seed++, -0.3f, 0.3f);
    m.tensors[lowrank_v_name(base)] = test::random_tensor({r, w.dim(1)}, seed++, -0.3f, 0.3f);
  }
}

ModelFile factorized_llama(bool tied) {
  ModelConfig c;
  c.dim = 48, c.hidden_dim = 80, c.n_layers = 2, c.n_heads = 3, c.n_kv_heads = 1, c.vocab_size = 97;
  c.max_seq_len = 32, c.tied_embeddings = tied;
  c.validate("factorized test llama");
  ModelFile m = random_model(c, DType::F32, 4);
  factorize_some(m, {"blk.0.attn_q", "blk.0.ffn_down", "blk.1.attn_output", "blk.1.ffn_gate"}, 6, 10);
  return m;
}

double max_rel_diff(const float* a, const float* b, size_t n) {
  double d = 0, mx = 0;
  for (size_t i = 0; i < n; ++i) d = std::max(d, double(std::fabs(a[i] - b[i]))), mx = std::max(mx, double(std::fabs(b[i])));
  return d / mx;
}

TEST(LowRankTrain, ParamsHoldTheFactorsAndTheGraphIsTheLowRankForward) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const ModelFile m = factorized_llama(tied);
    TransformerParams p = TransformerParams::from_model_file(m);
    ASSERT_EQ(p.factors.size(), 4u);
    EXPECT_TRUE(p.blocks[0].wq.value.empty());
    EXPECT_EQ(p.blocks[0].wq.name, "blk.0.attn_q.weight");
    std::vector<std::string> names;
    for (Parameter* q : p.all()) names.push_back(q->name);
    const auto at = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) - names.begin(); };
    EXPECT_EQ(at("blk.0.attn_q.weight.lr_u") + 1, at("blk.0.attn_q.weight.lr_v"));
    EXPECT_EQ(at("blk.0.attn_q.weight.lr_v") + 1, at("blk.0.attn_k.weight"));  // where the weight would be
    EXPECT_EQ(p.linears().size(), size_t(2 * 7 - 4 + (tied ? 0 : 1)));      // factorized Linears are not among them
    Transformer t(m);
    EXPECT_NE(t.linears()[0]->weight().kind().find("lowrank"), std::string::npos);
    const std::vector<int32_t> toks = test::random_tokens(2 * 16, 97, 5);
    Graph g;
    const Tensor logits = model_logits(g, p, toks, 16)->value;
    for (int s = 0; s < 2; ++s) {  // Transformer runs one sequence at a time
      const std::vector<int32_t> seq(toks.begin() + 16 * s, toks.begin() + 16 * (s + 1));
      const std::vector<float> ref = shrink::test::all_logits(t, seq);
      EXPECT_LT(max_rel_diff(logits.f32() + int64_t(16 * s) * 97, ref.data(), ref.size()), 1e-5);
    }
  }
}

TEST(LowRankTrain, GradientsOfTheFactorsMatchFiniteDifferences) {
  ModelConfig c = test::tiny_llama(false);
  ModelFile m = random_model(c, DType::F32, 3);
  factorize_some(m, {"blk.0.attn_v", "blk.1.ffn_up"}, 3, 20);
  TransformerParams model = TransformerParams::from_model_file(m);
  const std::vector<int32_t> tokens = test::random_tokens(11, 11, 3);
  const std::vector<int32_t> in(tokens.begin(), tokens.end() - 1), target(tokens.begin() + 1, tokens.end());
  std::vector<Parameter> ps;
  for (const auto& [name, f] : model.factors) ps.push_back(f.u), ps.push_back(f.v);  // shares the tensors
  auto build = [&](Graph& g, std::vector<Var>&) { return cross_entropy(model_logits(g, model, in, 5), target); };
  test::expect_grads_match(ps, build, test::Tolerance{1e-2f, 2e-2, 2e-3});
}

TEST(LowRankTrain, TrainedFactorsSaveAsALowRankModelAndStudentsKeepThem) {
  test::OneThread one;
  const ModelFile m = factorized_llama(false);
  TransformerParams p = TransformerParams::from_model_file(m);
  const std::vector<float> u0(p.factors.begin()->second.u.value.f32(), p.factors.begin()->second.u.value.f32() + 8);
  std::vector<int32_t> data = test::random_tokens(600, 97, 8);
  TrainOptions o;
  o.steps = 3, o.batch = 2, o.seq_len = 16, o.warmup = 0, o.lr = 1e-2;
  Trainer trainer(p, data, {}, o);
  for (int s = 0; s < 3; ++s) EXPECT_TRUE(std::isfinite(trainer.step().loss));
  EXPECT_NE(u0[0], p.factors.begin()->second.u.value.f32()[0]) << "the factors did not train";

  ModelFile saved = p.to_model_file();
  saved.tokenizer = m.tokenizer;
  EXPECT_EQ(saved.find("blk.0.attn_q.weight"), nullptr);
  ASSERT_NE(saved.find("blk.0.attn_q.weight.lr_u"), nullptr);
  const std::string path = shrink::test::temp_dir("lowrank_train") + "/trained.gguf";
  save_gguf_model(saved, path);
  const ModelFile back = load_model(path, {});
  Transformer t(back);
  const std::vector<int32_t> toks(data.begin(), data.begin() + 16);
  Graph g;
  const Tensor logits = model_logits(g, p, toks, 16)->value;
  const std::vector<float> ref = shrink::test::all_logits(t, toks);
  EXPECT_LT(max_rel_diff(logits.f32(), ref.data(), ref.size()), 1e-5);

  // A student of the teacher's layer 1 alone: blk.1's factors become its blk.0's, copied
  TransformerParams s = student_from_layers(p, {1});
  ASSERT_EQ(s.factors.size(), 2u);  // blk.1's attn_output and ffn_gate
  ASSERT_EQ(s.factors.count("blk.0.attn_output.weight"), 1u);
  const LowRankFactors& f = s.factors.at("blk.0.attn_output.weight");
  EXPECT_EQ(f.u.name, "blk.0.attn_output.weight.lr_u");
  EXPECT_EQ(f.v.name, "blk.0.attn_output.weight.lr_v");
  EXPECT_NE(f.u.value.data, p.factors.at("blk.1.attn_output.weight").u.value.data);  // a copy
  EXPECT_EQ(s.count(), p.count() - [&] {  // everything of blk.0 is gone, blk.1's kept
    int64_t n = 0;
    for (Parameter* q : p.all()) n += q->name.rfind("blk.0.", 0) == 0 ? q->numel() : 0;
    return n;
  }());
  TransformerParams clone = clone_params(p);
  EXPECT_EQ(clone.factors.size(), p.factors.size());
}

// prune → factorize → distil as one pipeline: `shrink factorize` output as `shrink distill --student`.
TEST(LowRankTrain, DistillCliTrainsAFactorizedStudent) {
  const std::string dir = shrink::test::temp_dir("lowrank_distill");
  ASSERT_EQ(shrink::test::run_shrink("init --preset tiny -o " + dir + "/tiny.gguf").code, 0);
  std::ofstream text(dir + "/text.txt");
  for (int i = 0; i < 1500; ++i) text << "the cat sat on the mat " << (i % 7) << "\n";
  text.close();
  const auto f = shrink::test::run_shrink("factorize " + dir + "/tiny.gguf --method svd --ratio 0.5 -t 1 -o " + dir +
                                          "/lr.gguf");
  ASSERT_EQ(f.code, 0) << f.out;
  const auto d = shrink::test::run_shrink("distill --teacher " + dir + "/tiny.gguf --student " + dir + "/lr.gguf --data " +
                                          dir + "/text.txt --steps 2 --batch 2 --seq-len 32 --warmup 1 -t 1 -o " + dir +
                                          "/student.gguf");
  ASSERT_EQ(d.code, 0) << d.out;
  const ModelFile out = load_model(dir + "/student.gguf", {});
  bool factorized = false;
  for (const auto& [name, t] : out.tensors) factorized |= name.size() > 5 && name.compare(name.size() - 5, 5, ".lr_u") == 0;
  EXPECT_TRUE(factorized) << "the student was densified";
  EXPECT_EQ(shrink::test::run_shrink("eval " + dir + "/student.gguf --ppl " + dir + "/text.txt -c 32 --chunks 2 -t 1").code, 0);
}

}  // namespace
}  // namespace shrink::train
