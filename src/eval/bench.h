// Speed measurement of a model: prefill and decode tokens/s (mean ± sd over
// repetitions), time to first token, peak RSS, weight bytes, and decode
// bytes/s as a fraction of the machine's measured read bandwidth — the bound
// for memory-bound decode. This machine's bandwidth drifts by up to 2x within
// minutes (other tenants of the host), so besides the whole-run fraction the
// bound is also probed right after each repetition and that repetition's
// decode rate is divided by it ("paired"): drift cancels in each pair.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace shrink::eval {

struct BenchOptions {
  int n_prompt = 128;  // prefill tokens
  int n_gen = 64;      // decoded tokens
  int reps = 5;
  std::vector<int> threads = {1, 2};
  bool measure_bandwidth = true;
  int depth = 0;                 // tokens already in the KV cache (filled once per thread count, not timed)
  KvType kv_cache = KvType::F32;
};

struct BenchRow {
  int threads = 0;
  double pp_tps = 0, pp_sd = 0;  // prefill tokens/s
  double tg_tps = 0, tg_sd = 0;  // decode tokens/s
  double ttft_ms = 0;            // prefill of n_prompt tokens + first decode step
  double bandwidth = 0;          // measured read bytes/s, best of the probes (0 if not measured)
  double decode_bytes_per_s = 0; // weight (+KV) bytes streamed per second while decoding
  double bw_fraction = 0;        // decode_bytes_per_s / bandwidth
  double bw_fraction_paired = 0; // median over repetitions of its decode bytes/s / a probe right after it
};

struct BenchResult {
  std::vector<BenchRow> rows;
  int64_t weight_bytes = 0, decode_bytes = 0;  // decode_bytes: weights streamed per token
  int64_t kv_cache_bytes = 0;     // the KV cache allocated (depth + n_prompt + n_gen positions)
  int64_t kv_bytes_per_pos = 0;   // KV-cache bytes per position (all layers, K and V)
  double kv_decode_bytes = 0;     // KV bytes one decoded token reads, on average over the n_gen tokens
  uint64_t peak_rss = 0;
};

BenchResult bench(Transformer& model, const BenchOptions& opt);

}  // namespace shrink::eval
