// QuantSpec: the general group quantization of shrink's own formats (the ones
// ggml's block types cannot express): b-bit codes (2..8) per group of `group`
// consecutive values of a row, with one scale (and zero point, asymmetric)
// per group. Codes are integers or a float codebook (NF4, FP4 e2m1, FP8).
//
// Integer grids follow GPTQ's reference quantizer (Frantar et al. 2022,
// quant.py): maxq = 2^b - 1, value = scale * (q - zero), q in [0, maxq];
// symmetric: zero = (maxq + 1) / 2, scale = 2 * max|x| / maxq; asymmetric:
// the range [min(x, 0), max(x, 0)] onto 0..maxq with an integer zero.
// Float codes: value = scale * code[q], scale = max|x| / max|code|.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shrink::quant {

enum class Code { Int, NF4, FP4, FP8_E4M3, FP8_E5M2 };

struct QuantSpec {
  int bits = 4;
  int64_t group = 128;  // values per scale; 0 = one group per row (per channel); -1 = per tensor
  bool symmetric = false;
  Code code = Code::Int;
  bool clip_search = false;  // search each group's range for the least (importance-weighted) squared error

  // Parses e.g. "int4", "int4g128", "int3g32sym", "int8ch" (per channel),
  // "int8t" (per tensor), "nf4g64", "fp4g32", "fp8e4m3ch", "fp8e5m2ch".
  static QuantSpec parse(const std::string& s);
  std::string name() const;
  int64_t group_len(int64_t cols) const;  // values per group for rows of `cols`
  int levels() const;                     // number of codes
  // Storage bits per weight for rows of `cols`: codes + f16 scale (+ f16 zero) per group.
  double bits_per_weight(int64_t cols, int64_t rows) const;
};

// The scale and zero of one group: value(q) = scale * (level(q) - zero).
struct GroupParams {
  float scale = 0, zero = 0;
};

// Maps values to codes and back for one spec.
class Codebook {
 public:
  explicit Codebook(const QuantSpec& spec);
  // Parameters of a group whose values span [lo, hi] (already clipped).
  GroupParams params(float lo, float hi) const;
  uint8_t encode(float x, const GroupParams& p) const;  // nearest code
  float decode(uint8_t q, const GroupParams& p) const { return p.scale * (level_[q] - p.zero); }
  int levels() const { return static_cast<int>(level_.size()); }

 private:
  QuantSpec spec_;
  std::vector<float> level_;  // sorted ascending
  float max_abs_level_ = 0;
};

// The parameters of a group of n values x, with an optional importance per
// value (nullable). With spec.clip_search or an importance vector, the range is
// shrunk in 1/100 steps down to 20% (GPTQ quant.py's `mse` option, with norm 2
// and importance weights) and the one with the least weighted squared error is
// kept; otherwise it is the group's min/max.
GroupParams choose_group_params(const Codebook& cb, const QuantSpec& spec, const float* x, int64_t n,
                                const float* importance);

}  // namespace shrink::quant
