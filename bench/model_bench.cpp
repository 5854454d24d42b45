// Whole-model prefill and decode on the llama-500m shape (`shrink init
// --preset llama-500m`, random weights): F32 against W8A8 (int8 weights and
// activations, compress/actquant) in the same run, so the ratio is like for
// like on a noisy machine. Issue 4's must-show 3 ("prefill tokens/s W8A8 vs
// F32 on llama-500m").
//   shrink_bench --benchmark_filter=Model
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "compress/actquant/w8a8.h"
#include "core/cpu.h"
#include "model/random_init.h"

namespace shrink {
namespace {

constexpr int kPrefill = 128;

std::vector<int32_t> tokens(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  t[0] = 1;
  for (int i = 1; i < n; ++i) t[i] = 3 + int32_t(rng() % 30000);
  return t;
}

// kind 0: F32 as initialised; 1: W8A8 per-token; 2: W8A8 static (minmax on one calibration sequence).
Transformer& model(int kind) {
  static ModelFile file = random_model(preset_config("llama-500m"), DType::F32, 1);
  static std::unique_ptr<Transformer> models[3];
  if (!models[kind]) {
    models[kind] = std::make_unique<Transformer>(file);
    if (kind > 0) {
      actquant::ActQuantOptions opt;
      opt.method = kind == 1 ? "dynamic" : "w8a8";
      calib::CalibSet calib;
      calib.seqs.push_back(tokens(64, 5));
      actquant::quantize_activations(*models[kind], calib, opt);
    }
  }
  return *models[kind];
}

const char* kKinds[] = {"f32", "w8a8 per-token", "w8a8 static"};

void BM_ModelPrefill(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  set_num_threads(static_cast<int>(state.range(1)));
  Transformer& m = model(kind);
  const std::vector<int32_t> toks = tokens(kPrefill, 9);
  std::vector<float> logits(static_cast<size_t>(m.config().vocab_size));
  KVCache cache = m.new_cache(kPrefill);
  for (auto _ : state) {
    cache.clear();
    m.forward(toks.data(), kPrefill, cache, logits.data(), false);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["tok_s"] = benchmark::Counter(double(state.iterations()) * kPrefill, benchmark::Counter::kIsRate);
  state.SetLabel(kKinds[kind]);
}
BENCHMARK(BM_ModelPrefill)->ArgNames({"kind", "threads"})->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_ModelDecode(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  set_num_threads(static_cast<int>(state.range(1)));
  Transformer& m = model(kind);
  const std::vector<int32_t> toks = tokens(64, 9);
  std::vector<float> logits(static_cast<size_t>(m.config().vocab_size));
  KVCache cache = m.new_cache(64);
  int pos = 0;
  for (auto _ : state) {
    if (pos == 64) cache.clear(), pos = 0;
    m.forward(&toks[size_t(pos++)], 1, cache, logits.data(), false);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["tok_s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(kKinds[kind]);
}
BENCHMARK(BM_ModelDecode)->ArgNames({"kind", "threads"})->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
}  // namespace shrink
