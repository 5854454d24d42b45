// Speed measurement of a model: prefill and decode tokens/s (mean ± sd over
// repetitions), time to first token, peak RSS, weight bytes, and decode
// bytes/s as a fraction of the machine's measured read bandwidth — the bound
// for memory-bound decode. The bound is the best 64 MiB block of a streaming
// read, so beside the mean decode rate the fraction is also given for the
// median decoded token (~10-50 ms, a window as short as the probe's): on a
// shared machine another tenant's burst lowers the mean, not the median. `depth` tokens can sit in the KV cache before the
// measured prefill and decode (llama-bench's -d): attention at long context.
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
  double bandwidth = 0;          // measured read bytes/s (0 if not measured)
  double decode_bytes_per_s = 0; // weight (+KV) bytes streamed per second while decoding
  double bw_fraction = 0;        // decode_bytes_per_s / bandwidth
  double tg_median_tps = 0;      // 1 / the median decoded token's time, over all repetitions
  double median_bytes_per_s = 0; // decode bytes/s at the median token's time
  double bw_fraction_median = 0; // median_bytes_per_s / bandwidth
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
