// Sparsity patterns and mask selection shared by every pruning criterion.
//   unstructured  a fraction s in (0, 1) of the weights is zeroed
//   N:M           in every group of M consecutive weights of a row (along the
//                 input dimension) at most N are kept: 2:4 and 4:8 keep half,
//                 the pattern sparse tensor cores and NmWeight (model/) use.
// A mask selector gets a score per weight (higher = more important) and zeroes
// the lowest-scoring ones: exactly round(s * count) of them (ties broken by
// position), so achieved sparsity equals the target up to that rounding.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shrink::prune {

struct SparsityPattern {
  double ratio = 0;  // unstructured: fraction zeroed
  int n = 0, m = 0;  // N:M: n kept in every m (m == 0: unstructured)

  bool is_nm() const { return m > 0; }
  double sparsity() const { return is_nm() ? 1.0 - double(n) / m : ratio; }
  std::string name() const;  // "0.5" or "2:4"
  // "0.5", "50%" or "N:M"; throws on a ratio outside (0, 1) or N:M without 0 < N < M.
  static SparsityPattern parse(const std::string& s);
};

// Weights kept of a group of `len` <= m columns: n for a full group; a row's
// last group is shorter when m does not divide the row (stories260K's 172-wide
// ffn_down with 4:8) and keeps the same fraction, round(len * n / m), at least 1.
int64_t nm_keep(const SparsityPattern& p, int64_t len);

// Where masks compare weights: over the whole matrix (magnitude), or within
// each output row (Wanda). N:M always compares within a row's group of M.
enum class MaskScope { Layer, Row };

// score: row-major {rows, cols}. Returns a mask of the same shape, 1 = prune.
std::vector<uint8_t> select_mask(const float* score, int64_t rows, int64_t cols, const SparsityPattern& p,
                                 MaskScope scope);

// The lowest `k` of `count` scores at score[i * stride], i = 0..count-1: sets
// mask[i * stride] = 1 for them (ties: lower index first).
void mark_lowest(const float* score, int64_t count, int64_t stride, int64_t k, uint8_t* mask);

// Fraction of exact zeros in w.
double zero_fraction(const float* w, int64_t count);

}  // namespace shrink::prune
