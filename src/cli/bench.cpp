// shrink bench MODEL [-p 128] [-n 64] [-t 1,2] [-r 5] [-d DEPTH] [--kv-cache f32|int8] [--json]
// — prefill and decode speed (optionally after DEPTH tokens already in the KV
// cache), time to first token, peak memory, KV-cache size, and decode bandwidth use.
#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/cpu.h"
#include "eval/bench.h"
#include "kernels/attention_q8.h"
#include "kernels/gemv.h"

namespace shrink::cli {

namespace {
struct BenchArgs {
  ModelArgs m;
  eval::BenchOptions o;
  bool json = false;
  std::string kv = "f32";
};

void print_table(const ModelFile& f, const eval::BenchResult& r, const eval::BenchOptions& o) {
  std::printf("model: %s (%s)\n", f.path.c_str(), f.config.summary().c_str());
  std::printf("weights %s; decode streams %s/token; cpu %s (gemv %s)\n", human_bytes(double(r.weight_bytes)).c_str(),
              human_bytes(double(r.decode_bytes)).c_str(), cpu_features_str().c_str(), kernels::gemv_isa());
  std::printf("KV cache %s%s%s: %s for %d positions (%s/position; a decoded token reads %s of it on average)\n",
              kv_type_name(o.kv_cache), o.kv_cache == KvType::Int8 ? ", attention " : "",
              o.kv_cache == KvType::Int8 ? kernels::attention_q8_isa() : "", human_bytes(double(r.kv_cache_bytes)).c_str(),
              o.depth + o.n_prompt + o.n_gen + 1, human_bytes(double(r.kv_bytes_per_pos)).c_str(),
              human_bytes(r.kv_decode_bytes).c_str());
  const std::string at = o.depth > 0 ? " @ d" + std::to_string(o.depth) : "";
  std::printf("| threads | pp%d%s tok/s | tg%d%s tok/s | TTFT ms | decode GB/s | bandwidth GB/s | of bound | paired |\n",
              o.n_prompt, at.c_str(), o.n_gen, at.c_str());
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& row : r.rows)
    std::printf("| %d | %.1f ± %.1f | %.2f ± %.2f | %.1f | %.2f | %.2f | %.0f%% | %.0f%% |\n", row.threads, row.pp_tps,
                row.pp_sd, row.tg_tps, row.tg_sd, row.ttft_ms, row.decode_bytes_per_s / 1e9, row.bandwidth / 1e9,
                100 * row.bw_fraction, 100 * row.bw_fraction_paired);
  std::printf("peak RSS %s\n", human_bytes(double(r.peak_rss)).c_str());
}

void run_bench(const BenchArgs& a) {
  ModelFile f = open_model(a.m, false);
  Transformer model(f);
  eval::BenchOptions o = a.o;
  o.kv_cache = parse_kv_type(a.kv);
  const eval::BenchResult r = eval::bench(model, o);
  if (!a.json) return print_table(f, r, o);
  nlohmann::json j = {{"model", f.path}, {"config", f.config.summary()}, {"n_prompt", o.n_prompt},
                      {"n_gen", o.n_gen}, {"reps", o.reps}, {"depth", o.depth}, {"weight_bytes", r.weight_bytes},
                      {"decode_bytes_per_token", r.decode_bytes}, {"kv_cache", kv_type_name(o.kv_cache)},
                      {"kv_cache_bytes", r.kv_cache_bytes}, {"kv_bytes_per_pos", r.kv_bytes_per_pos},
                      {"kv_decode_bytes_per_token", r.kv_decode_bytes}, {"peak_rss", r.peak_rss},
                      {"cpu", cpu_features_str()}, {"gemv_isa", kernels::gemv_isa()}};
  // Bits per weight of the Linears as stored (a tied head is the embedding: not counted), as quantize and
  // factorize report it, so a table can give it for any model file (pruned, compressed, factorized).
  int64_t linear_params = 0, linear_bytes = 0;
  for (Linear* l : model.linears())
    if (!(l == &model.output() && model.config().tied_embeddings))
      linear_params += l->in_features() * l->out_features(), linear_bytes += l->weight().bytes();
  j["linear_bits_per_weight"] = 8.0 * double(linear_bytes) / double(std::max<int64_t>(linear_params, 1));
  for (const auto& row : r.rows)
    j["runs"].push_back({{"threads", row.threads}, {"pp_tps", row.pp_tps}, {"pp_sd", row.pp_sd},
                         {"tg_tps", row.tg_tps}, {"tg_sd", row.tg_sd}, {"ttft_ms", row.ttft_ms},
                         {"bandwidth", row.bandwidth}, {"decode_bytes_per_s", row.decode_bytes_per_s},
                         {"bw_fraction", row.bw_fraction}, {"bw_fraction_paired", row.bw_fraction_paired}});
  std::printf("%s\n", j.dump(2).c_str());
}
}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Prefill/decode tokens/s, time to first token, peak memory, bandwidth use");
  cmd->add_option("model", a->m.model, "Model: HF directory, .gguf file, or llama2.c .bin")->required();
  cmd->add_option("-p,--n-prompt", a->o.n_prompt, "Prompt tokens to prefill")->capture_default_str();
  cmd->add_option("-n,--n-gen", a->o.n_gen, "Tokens to decode")->capture_default_str();
  cmd->add_option("-r,--reps", a->o.reps, "Repetitions (after one warm-up)")->capture_default_str();
  cmd->add_option("-d,--depth", a->o.depth, "Tokens already in the KV cache before prefill and decode (filled once, not timed)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--kv-cache", a->kv, "KV-cache type: f32 or int8 (per-head int8 codes + f32 scale)")
      ->capture_default_str()
      ->check(CLI::IsMember(kv_type_names()));
  cmd->add_option("-t,--threads", a->o.threads, "Thread counts to run, e.g. 1,2")->delimiter(',')->capture_default_str();
  cmd->add_flag("!--no-bandwidth", a->o.measure_bandwidth, "Skip the memory-bandwidth probes (~1 s each: one after every repetition)");
  cmd->add_flag("--json", a->json, "Print JSON instead of a table");
  cmd->footer(
      "Environment (to compare kernel choices on one machine): SHRINK_ISA=avx2|scalar caps the SIMD level; "
      "SHRINK_WIDE_WALK=0|1 forces how many row streams a decoding thread walks (default: 4 on AMD CPUs, "
      "8 on others when alone); SHRINK_REPACK=1 decodes Q4_0/Q4_K from a 16-row interleaved copy.");
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace shrink::cli
