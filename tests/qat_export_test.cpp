// `shrink qat`'s exactness (train/qat.h): for every supported format the
// exported weights are the fake-quant forward's weights bit for bit (at shapes
// with partial groups and ggml's block-type fallbacks, tied and untied heads,
// learned scales moved off RTN's); a few QAT steps on a small model, then its
// export gives the fake-quant graph's logits (to float tolerance with the
// weights dequantized; within ggml's 8-bit activation rounding through the
// block kernels), and the written file reloads to the same model. The CLI
// end to end on `shrink init --preset tiny`: the fake-quant PPL it reports
// equals the written model's, and formats it cannot export exactly are refused.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <fstream>
#include <random>

#include "core/error.h"
#include "model/random_init.h"
#include "test_util.h"
#include "train/qat.h"
#include "train/trainer.h"

namespace shrink::train {
namespace {

struct OneThread {
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
};

// Awkward on purpose: q/k/v/gate/up have 256 columns (K-quant super-blocks
// fit), down 288 (K-quants fall back to Q4_0, int2g40 has a partial group),
// o 128, 300 vocabulary rows.
ModelConfig awkward_config(bool tied) {
  ModelConfig c;
  c.dim = 256, c.hidden_dim = 288, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 300;
  c.head_dim = 0;
  c.max_seq_len = 64;
  c.tied_embeddings = tied;
  c.validate("awkward qat model");
  return c;
}

struct Case {
  std::string type;
  bool lsq, tied;
};

const Case kCases[] = {{"q4_0", true, false},       {"q4_0", false, true},       {"q2_k", false, false},
                       {"q4_k", false, true},       {"int4g32sym", true, false}, {"int2g40sym", true, true},
                       {"int3g64sym", false, false}, {"int2g32sym", false, true}};

quant::QuantizeOptions options_for(const Case& c) {
  return quant::type_options(quant::QuantTarget::parse(c.type), c.tied);
}

// Moves learned steps off RTN's (×0.6..1.4, some negated for Q4_0) so the check is not of RTN alone.
void perturb_steps(QatQuantizer& q, bool allow_negative, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.6f, 1.4f);
  for (Parameter* s : q.params())
    for (int64_t i = 0; i < s->numel(); ++i) s->value.f32()[i] *= (allow_negative && rng() % 5 == 0 ? -1 : 1) * u(rng);
}

void expect_bit_equal(const Tensor& a, const float* b, const std::string& what) {
  int64_t bad = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a.f32()[i] != b[i] && ++bad <= 3) ADD_FAILURE() << what << "[" << i << "]: " << a.f32()[i] << " vs " << b[i];
  EXPECT_EQ(bad, 0) << what;
}

// The exported (quantized) tensor of `name` as f32.
Tensor exported_values(Transformer& t, const std::string& name) {
  if (name == "token_embd.weight") return t.token_embedding().to(DType::F32);
  for (Linear* l : t.linears())
    if (l->name() + ".weight" == name) return l->weight().to_dense_f32();
  fail("no Linear ", name);
}

TEST(QatExport, ExportedWeightsEqualTheFakeQuantForward) {
  OneThread one;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.type + (c.lsq ? " lsq" : " rtn") + (c.tied ? " tied" : " untied"));
    ModelFile m = random_model(awkward_config(c.tied), DType::F32, 3);
    TransformerParams p = TransformerParams::from_model_file(m);
    QatQuantizer q(p, options_for(c), c.lsq);
    EXPECT_EQ(!q.params().empty(), c.lsq);
    if (c.lsq) perturb_steps(q, c.type == "q4_0", 7);
    auto exported = q.export_model(p, m);
    Graph g;
    std::string kinds = " ";
    for (const auto& [name, what] : q.plan()) {
      Parameter* w = name == p.tok_embd.name ? &p.tok_embd : nullptr;
      for (Parameter* l : p.linears())
        if (l->name == name) w = l;
      ASSERT_NE(w, nullptr) << name;
      Var fake = q.apply(g, name, g.constant(w->value));
      expect_bit_equal(exported_values(*exported, name), fake->v(), name + " (" + what + ")");
      kinds += name + "=" + what + " ";
    }
    // The same tensors `shrink quantize --type` rounds: an untied head always,
    // the table for block types (a tied one in the head's type).
    const bool block = c.type[0] == 'q';
    EXPECT_EQ(kinds.find(" token_embd.weight=") != std::string::npos, block) << kinds;
    EXPECT_EQ(kinds.find(" output.weight=") != std::string::npos, !c.tied) << kinds;
    if (c.type == "q2_k") {  // fallback
      EXPECT_NE(kinds.find("ffn_down.weight=q4_0 rtn"), std::string::npos) << kinds;
    }
    if (c.type == "q4_0" && c.lsq) {
      EXPECT_NE(kinds.find("output.weight=q6_k rtn"), std::string::npos) << kinds;
    }
    if (c.type == "q4_0" && c.tied) {
      EXPECT_NE(kinds.find("token_embd.weight=q6_k rtn"), std::string::npos) << kinds;
    }
  }
}

// --init gptq's mechanism (start_from), here from an RTN-quantized copy: the
// first forward of the LSQ-covered Linears is that model's weights exactly.
TEST(QatExport, StartFromAnotherQuantizationIsThatModel) {
  OneThread one;
  for (const char* type : {"q4_0", "int4g64sym"}) {
    SCOPED_TRACE(type);
    ModelFile m = random_model(awkward_config(false), DType::F32, 9);
    TransformerParams p = TransformerParams::from_model_file(m);
    const quant::QuantizeOptions opt = quant::type_options(quant::QuantTarget::parse(type), false);
    QatQuantizer q(p, opt, true);
    perturb_steps(q, false, 3);  // away from the start, so start_from has to set them
    Transformer other(m);
    quant::quantize_model(other, calib::CalibSet{}, opt);
    q.start_from(p, other);
    Graph g;
    int checked = 0;
    for (Parameter* w : p.linears()) {
      if (linear_role(w->name) == "head") continue;
      Var fake = q.apply(g, w->name, g.constant(w->value));
      expect_bit_equal(exported_values(other, w->name), fake->v(), w->name);
      ++checked;
    }
    EXPECT_EQ(checked, 7);
  }
}

TEST(QatExport, LsqIsRefusedWhereScalesCannotBeExportedExactly) {
  ModelFile m = random_model(awkward_config(false), DType::F32, 3);
  TransformerParams p = TransformerParams::from_model_file(m);
  for (const char* t : {"q2_k", "q4_k", "q4_1", "int4g32", "nf4g64", "int4g32symclip"}) {
    const std::string err = test::error_of([&] { QatQuantizer(p, quant::type_options(quant::QuantTarget::parse(t), false), true); });
    EXPECT_NE(err.find("--lsq"), std::string::npos) << t << ": " << err;
  }
  for (const char* t : {"onebit", "f16"})
    EXPECT_THROW(QatQuantizer(p, quant::type_options(quant::QuantTarget::parse(t), false), false), Error) << t;
}

// Max |a − b| over max |b|.
double rel_max_diff(const std::vector<float>& a, const float* b) {
  double d = 0, mx = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i]))), mx = std::max(mx, double(std::fabs(b[i])));
  return d / mx;
}

TEST(QatExport, TrainedModelExportsToTheFakeQuantLogits) {
  OneThread one;
  for (const Case& c : {Case{"q4_0", true, false}, Case{"int2g32sym", true, false}, Case{"q2_k", false, true}}) {
    SCOPED_TRACE(c.type);
    ModelFile m = random_model(awkward_config(c.tied), DType::F32, 5);
    TransformerParams p = TransformerParams::from_model_file(m);
    QatQuantizer q(p, options_for(c), c.lsq);
    std::vector<int32_t> data = test::random_tokens(2000, 11);
    for (auto& t : data) t %= 300;
    TrainObjective obj;
    obj.graph_options.fake_quant = &q;
    obj.params = p.all();
    for (Parameter* s : q.params()) obj.params.push_back(s);
    const std::vector<float> steps_before = c.lsq ? std::vector<float>(q.params()[0]->value.f32(), q.params()[0]->value.f32() + 8) : std::vector<float>{};
    TrainOptions o;
    o.steps = 4, o.batch = 2, o.seq_len = 32, o.warmup = 1, o.lr = 3e-3, o.min_lr = 3e-4;
    Trainer trainer(p, data, {}, o, obj);
    for (int s = 0; s < 4; ++s) EXPECT_TRUE(std::isfinite(trainer.step().loss));
    if (c.lsq) {
      EXPECT_NE(steps_before[0], q.params()[0]->value.f32()[0]) << "LSQ steps did not move";
    }

    const std::vector<int32_t> toks(data.begin(), data.begin() + 32);
    Graph g;
    const Tensor fake = llama_logits(g, p, toks, 32, obj.graph_options)->value;
    auto exported = q.export_model(p, m);
    // Weights dequantized, f32 activations: the fake-quant graph's logits to float tolerance.
    ModelFile dense = m;
    for (const auto& [name, what] : q.plan()) dense.tensors[name] = exported_values(*exported, name);
    Transformer deq(dense);
    EXPECT_LT(rel_max_diff(test::all_logits(deq, toks), fake.f32()), 1e-5);
    // Through the format's own kernels (ggml's Q8 activations for block types).
    const std::vector<float> real = test::all_logits(*exported, toks);
    const double real_diff = rel_max_diff(real, fake.f32());
    std::printf("%s: exported model vs fake-quant logits, max |diff| / max |logit| = %.2e\n", c.type.c_str(), real_diff);
    EXPECT_LT(real_diff, 2e-2);
    // Written and reloaded: the same model.
    const std::string dir = test::temp_dir("qat_export_" + c.type);
    const std::string out = c.type[0] == 'q' ? dir + "/m.gguf" : dir + "/hf";
    if (c.type[0] == 'q') {
      ModelFile f = m;
      exported->export_to(f);
      save_gguf_model(f, out);
    } else {
      save_quantized_hf(*exported, m, out, DType::F32, true);
    }
    const ModelFile back = load_model(out, {});
    Transformer reloaded(back);
    const std::vector<float> again = test::all_logits(reloaded, toks);
    EXPECT_EQ(rel_max_diff(again, real.data()), 0.0);
  }
}

// Logits of toks decoded one token at a time: every quantized kernel multiplies Q8-rounded activations.
std::vector<float> decode_logits(Transformer& m, const std::vector<int32_t>& toks) {
  KVCache cache = m.new_cache(static_cast<int>(toks.size()));
  const int64_t vocab = m.config().vocab_size;
  std::vector<float> out(toks.size() * size_t(vocab));
  for (size_t i = 0; i < toks.size(); ++i) m.forward(&toks[i], 1, cache, out.data() + int64_t(i) * vocab, true);
  return out;
}

// Positions (rows of vocab logits) where a and b agree to `tol` of b's largest |logit|.
int rows_within(const std::vector<float>& a, const float* b, int64_t vocab, double tol) {
  double mx = 0;
  for (size_t i = 0; i < a.size(); ++i) mx = std::max(mx, double(std::fabs(b[i])));
  int n = 0;
  for (size_t r = 0; r * vocab < a.size(); ++r) {
    double d = 0;
    for (int64_t v = 0; v < vocab; ++v) d = std::max(d, double(std::fabs(a[r * vocab + v] - b[r * vocab + v])));
    n += d <= tol * mx;
  }
  return n;
}

// --act-quant runtime: the fake-quant graph rounds each Linear's input as the exported kernel
// does, so it gives the decode logits to float tolerance, where weight-only fake quantization
// is off by the activation rounding at every position. Rounding is discontinuous: the graph's
// and the runtime's f32 inputs differ in the last bits (summation order, SiLU), which now and
// then moves a value across a rounding boundary and one position's logits by ~1e-3; so most
// positions, not all, must agree.
TEST(QatExport, RuntimeActivationsGiveTheDecodeKernelsLogits) {
  OneThread one;
  const int n = 24;
  for (const Case& c : {Case{"q4_0", true, false}, Case{"q4_k", false, true}, Case{"q2_k", false, false},
                        Case{"int4g32sym", true, true}, Case{"int2g40sym", true, false}, Case{"int3g64sym", false, false}}) {
    SCOPED_TRACE(c.type);
    ModelFile m = random_model(awkward_config(c.tied), DType::F32, 6);
    TransformerParams p = TransformerParams::from_model_file(m);
    quant::QuantizeOptions opt = options_for(c);
    opt.quantize_head = c.type != "int3g64sym";  // int3 alone: 3-bit groups multiply f32 activations
    QatQuantizer q(p, opt, c.lsq, QatActivations::Runtime);
    if (c.lsq) perturb_steps(q, c.type == "q4_0", 7);
    bool any_rounded = false;
    for (const auto& [name, what] : q.plan()) any_rounded |= what.find("+act") != std::string::npos;
    EXPECT_EQ(any_rounded, c.type != "int3g64sym");
    std::vector<int32_t> toks = test::random_tokens(n, 12);
    for (auto& t : toks) t %= 300;
    auto exported = q.export_model(p, m);
    const std::vector<float> decoded = decode_logits(*exported, toks);
    GraphOptions o;
    o.fake_quant = &q;
    Graph g;
    const int agree = rows_within(decoded, llama_logits(g, p, toks, n, o)->value.f32(), 300, 5e-6);
    EXPECT_GE(agree, n - 3);
    if (c.lsq || !any_rounded) continue;  // (a weights-only quantizer would start from RTN's steps)
    QatQuantizer weights_only(p, opt, false);
    o.fake_quant = &weights_only;
    Graph g2;
    const int agree_weights_only = rows_within(decoded, llama_logits(g2, p, toks, n, o)->value.f32(), 300, 5e-6);
    std::printf("%s: positions whose decode logits the fake-quant graph gives to 5e-6: %d/%d with --act-quant "
                "runtime, %d/%d weights only\n", c.type.c_str(), agree, n, agree_weights_only, n);
    EXPECT_LE(agree_weights_only, 3);
  }
}

double ppl_after(const std::string& out, const std::string& what) {
  const size_t at = out.find(what);
  if (at == std::string::npos) return -1;
  return std::stod(out.substr(out.find("PPL ", at) + 4));
}

TEST(QatCli, ReportsMatchingPerplexitiesAndRefusesInexactFormats) {
  const std::string dir = test::temp_dir("qat_cli");
  ASSERT_EQ(test::run_shrink("init --preset tiny -o " + dir + "/tiny.gguf").code, 0);
  std::ofstream text(dir + "/text.txt");
  for (int i = 0; i < 2000; ++i) text << "the cat sat on the mat " << (i % 7) << "\n";
  text.close();
  const std::string common = " --data " + dir + "/text.txt --cache-dir " + dir + "/cache --steps 3 --batch 2 "
                             "--seq-len 32 --warmup 1 --lr 1e-3 -t 1 --ppl " + dir + "/text.txt --ctx 64 --chunks 4 ";
  for (const std::string& args : {std::string("--type q4_0 --lsq --teacher self -o ") + dir + "/q4.gguf",
                                  std::string("--type int2g32sym --lsq -o ") + dir + "/int2",
                                  std::string("--type q4_0 --act-quant runtime -o ") + dir + "/q4act.gguf"}) {
    const auto r = test::run_shrink("qat " + dir + "/tiny.gguf " + args + common);
    ASSERT_EQ(r.code, 0) << r.out;
    // Without --act-quant the graph is the whole-window (f32 activation) model; with it, decode's.
    const bool act = args.find("--act-quant") != std::string::npos;
    const double fake = ppl_after(r.out, "fake-quant graph");
    const double written = ppl_after(r.out, act ? "written model, Q8 activations" : "written model, f32 activations");
    ASSERT_GT(fake, 0) << r.out;
    EXPECT_NEAR(written, fake, 2e-3 * fake) << r.out;
  }
  const auto ub = test::run_shrink("eval " + dir + "/q4act.gguf --ppl " + dir + "/text.txt --ctx 64 --chunks 4 -t 1 --ubatch 8");
  EXPECT_EQ(ub.code, 0) << ub.out;
  const auto ev = test::run_shrink("eval " + dir + "/q4.gguf --ppl " + dir + "/text.txt --ctx 64 --chunks 4 -t 1");
  EXPECT_EQ(ev.code, 0) << ev.out;
  for (const std::string& bad : {std::string("--type q2_k --lsq -o ") + dir + "/x.gguf",
                                 std::string("--type onebit -o ") + dir + "/x",
                                 std::string("--type int4g32sym -o ") + dir + "/x.gguf",
                                 std::string("--type q4_0 -o ") + dir + "/xdir", std::string("--type f16 -o ") + dir + "/x.gguf"}) {
    const auto r = test::run_shrink("qat " + dir + "/tiny.gguf " + bad + common);
    EXPECT_NE(r.code, 0) << bad << "\n" << r.out;
    EXPECT_NE(r.out.find("rror"), std::string::npos) << bad << "\n" << r.out;
  }
}

}  // namespace
}  // namespace shrink::train
