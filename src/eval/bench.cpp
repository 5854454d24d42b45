#include "eval/bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/bandwidth.h"

namespace shrink::eval {

namespace {
void mean_sd(const std::vector<double>& v, double& mean, double& sd) {
  mean = 0;
  for (double x : v) mean += x;
  mean /= v.size();
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  sd = v.size() > 1 ? std::sqrt(ss / (v.size() - 1)) : 0;
}

// The bandwidth probe allocates 1 GiB, which must not count as the model's
// peak RSS: the high-water mark is read before each probe and reset after it
// (Linux's /proc/self/clear_refs "5"); loading's peak is kept. Where that reset is refused, the
// probes run once per thread count after all decoding, unpaired.
struct Probe {
  bool paired = false;
  uint64_t peak_rss = 0;  // the highest VmHWM seen outside the probes
  static bool reset_peak_rss() {
    std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    const bool ok = std::fputs("5", f) >= 0;
    return std::fclose(f) == 0 && ok;
  }
  double measure(int threads) {
    peak_rss = std::max(peak_rss, peak_rss_bytes());
    const double bw = kernels::measure_read_bandwidth(threads);
    reset_peak_rss();
    return bw;
  }
};

BenchRow bench_threads(Transformer& model, const BenchOptions& opt, int threads, const std::vector<int32_t>& tokens,
                       double kv_decode_bytes, Probe& probe) {
  set_num_threads(threads);
  BenchRow row;
  row.threads = threads;
  const int vocab = model.config().vocab_size;
  KVCache cache = model.new_cache(opt.depth + opt.n_prompt + opt.n_gen + 1, opt.kv_cache);
  std::vector<float> logits(vocab);
  if (opt.depth > 0) model.forward(tokens.data(), opt.depth, cache, logits.data(), false);
  const int32_t* prompt = tokens.data() + opt.depth;
  std::vector<double> pp, tg, ttft, paired;
  for (int r = -1; r < opt.reps; ++r) {  // r = -1 is a warm-up
    cache.len = opt.depth;  // keep the depth tokens; later positions are overwritten
    const double t0 = now_seconds();
    model.forward(prompt, opt.n_prompt, cache, logits.data(), false);
    const double t1 = now_seconds();
    int32_t tok = prompt[opt.n_prompt - 1];
    double t_first = 0;
    for (int i = 0; i < opt.n_gen; ++i) {
      tok = (tok * 7 + 13) % vocab;  // tokens do not matter for speed; avoid argmax cost
      model.forward(&tok, 1, cache, logits.data(), false);
      if (i == 0) t_first = now_seconds();
    }
    const double t2 = now_seconds();
    if (r < 0) continue;
    pp.push_back(opt.n_prompt / (t1 - t0));
    tg.push_back(opt.n_gen / (t2 - t1));
    ttft.push_back((t_first - t0) * 1e3);
    if (probe.paired) {
      const double bw = probe.measure(threads);
      row.bandwidth = std::max(row.bandwidth, bw);
      paired.push_back(tg.back() * (double(model.decode_bytes()) + kv_decode_bytes) / bw);
    }
  }
  mean_sd(pp, row.pp_tps, row.pp_sd);
  mean_sd(tg, row.tg_tps, row.tg_sd);
  double sd;
  mean_sd(ttft, row.ttft_ms, sd);
  // Each decoded token streams every weight once plus the KV cache so far.
  row.decode_bytes_per_s = row.tg_tps * (double(model.decode_bytes()) + kv_decode_bytes);
  if (!paired.empty()) {
    std::sort(paired.begin(), paired.end());
    row.bw_fraction_paired = paired[paired.size() / 2];
    row.bw_fraction = row.decode_bytes_per_s / row.bandwidth;
  }
  return row;
}
}  // namespace

BenchResult bench(Transformer& model, const BenchOptions& opt) {
  SHRINK_CHECK(opt.n_prompt > 0 && opt.n_gen > 0 && opt.reps > 0, "bench needs -p, -n and -r > 0");
  SHRINK_CHECK(opt.depth >= 0, "bench needs a depth >= 0");
  BenchResult res;
  res.weight_bytes = model.weight_bytes();
  res.decode_bytes = model.decode_bytes();
  {
    const KVCache probe = model.new_cache(1, opt.kv_cache);
    res.kv_bytes_per_pos = probe.bytes();
  }
  res.kv_cache_bytes = res.kv_bytes_per_pos * (opt.depth + opt.n_prompt + opt.n_gen + 1);
  // Decoded token i attends over depth + n_prompt + i + 1 positions: on average
  // depth + n_prompt + (n_gen + 1) / 2.
  res.kv_decode_bytes = double(res.kv_bytes_per_pos) * (opt.depth + opt.n_prompt + (opt.n_gen + 1) / 2.0);
  std::mt19937 rng(1234);
  std::vector<int32_t> tokens(opt.depth + opt.n_prompt);
  for (auto& t : tokens) t = int32_t(rng() % model.config().vocab_size);
  Probe probe;
  probe.peak_rss = peak_rss_bytes();  // loading's peak, before the first reset
  probe.paired = opt.measure_bandwidth && Probe::reset_peak_rss();
  for (int th : opt.threads) res.rows.push_back(bench_threads(model, opt, th, tokens, res.kv_decode_bytes, probe));
  res.peak_rss = std::max(probe.peak_rss, peak_rss_bytes());  // before any unpaired probe's 1 GiB buffer
  if (opt.measure_bandwidth && !probe.paired)
    for (auto& row : res.rows) {
      row.bandwidth = kernels::measure_read_bandwidth(row.threads);
      row.bw_fraction = row.decode_bytes_per_s / row.bandwidth;
    }
  return res;
}

}  // namespace shrink::eval
