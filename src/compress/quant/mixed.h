// Mixed precision: how many bits each Linear gets, to hit a size budget at the
// least cost in quality.
//
// Sensitivity: for every Linear and every candidate target (a ladder such as
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0), the KL divergence of the model's
// next-token distribution from the original's on a few calibration sequences
// when that Linear alone is rounded (RTN) to the target. Hidden states entering
// each block are cached, so a Linear of block b costs a forward of blocks
// b..n-1 plus the head.
//
// Allocation: per-layer KLs are taken as additive (the usual first-order
// assumption of HAWQ-style allocators); starting from the cheapest target
// everywhere, the upgrade with the largest KL reduction per extra byte is
// taken while the total stays within budget (a greedy knapsack).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/calib/calib.h"
#include "compress/quant/quantize.h"
#include "compress/quant/target.h"

namespace shrink::quant {

struct LayerSensitivity {
  std::string name;
  int64_t params = 0;
  std::vector<QuantTarget> targets;  // the ladder, after per-layer fallback
  std::vector<int64_t> bytes;        // stored size at each target
  std::vector<double> kld;           // mean KL (nats/token) with only this Linear at each target
};

// The default ladders: ggml K/Q8 types for block targets; int2..int8 with the
// spec's group size and symmetry for group formats.
std::vector<QuantTarget> default_ladder(const QuantTarget& like);

// Measures every Linear (the head too when opt.quantize_head and it is not
// tied) on the first sequences of calib holding about n_tokens tokens.
std::vector<LayerSensitivity> measure_sensitivity(Transformer& model, const calib::CalibSet& calib, int64_t n_tokens,
                                                  const std::vector<QuantTarget>& ladder, const QuantizeOptions& opt,
                                                  const std::function<void(int, int)>& progress = {});

// Chooses one target per Linear with total bytes <= budget_bytes (at least
// the cheapest everywhere). Returns name -> target.
std::map<std::string, QuantTarget> allocate_bits(const std::vector<LayerSensitivity>& s, int64_t budget_bytes);

}  // namespace shrink::quant
