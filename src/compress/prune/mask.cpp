#include "compress/prune/mask.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace shrink::prune {

std::string SparsityPattern::name() const {
  if (is_nm()) return std::to_string(n) + ":" + std::to_string(m);
  std::string s = std::to_string(ratio);
  while (s.size() > 3 && s.back() == '0') s.pop_back();  // "0.500000" -> "0.5"
  return s;
}

SparsityPattern SparsityPattern::parse(const std::string& s) {
  SparsityPattern p;
  const size_t colon = s.find(':');
  try {
    if (colon != std::string::npos) {
      size_t used_n = 0, used_m = 0;
      p.n = std::stoi(s.substr(0, colon), &used_n);
      p.m = std::stoi(s.substr(colon + 1), &used_m);
      SHRINK_CHECK(used_n == colon && used_m == s.size() - colon - 1, "bad N:M sparsity '", s, "'");
      SHRINK_CHECK(p.n > 0 && p.n < p.m, "N:M sparsity '", s, "' keeps N of every M weights: needs 0 < N < M");
      SHRINK_CHECK(p.m <= 256, "N:M sparsity '", s, "': M above 256 is not a semi-structured pattern");
      return p;
    }
    size_t used = 0;
    const bool percent = !s.empty() && s.back() == '%';
    const std::string num = percent ? s.substr(0, s.size() - 1) : s;
    p.ratio = std::stod(num, &used) / (percent ? 100.0 : 1.0);
    SHRINK_CHECK(used == num.size(), "bad sparsity '", s, "'");
  } catch (const std::logic_error&) {
    fail("bad sparsity '", s, "': give a fraction in (0, 1) such as 0.5, a percentage such as 50%, or N:M such as 2:4");
  }
  SHRINK_CHECK(p.ratio > 0 && p.ratio < 1, "sparsity ", s, " is outside (0, 1): give the fraction of weights to zero");
  return p;
}

int64_t nm_keep(const SparsityPattern& p, int64_t len) {
  if (len == p.m) return p.n;
  return std::max<int64_t>(1, std::llround(double(len) * p.n / p.m));
}

void mark_lowest(const float* score, int64_t count, int64_t stride, int64_t k, uint8_t* mask) {
  if (k <= 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(count));
  std::iota(idx.begin(), idx.end(), 0);
  auto lower = [&](int64_t a, int64_t b) {
    const float sa = score[a * stride], sb = score[b * stride];
    return sa < sb || (sa == sb && a < b);
  };
  if (k < count) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), lower);
  for (int64_t i = 0; i < std::min(k, count); ++i) mask[idx[i] * stride] = 1;
}

std::vector<uint8_t> select_mask(const float* score, int64_t rows, int64_t cols, const SparsityPattern& p,
                                 MaskScope scope) {
  std::vector<uint8_t> mask(static_cast<size_t>(rows * cols), 0);
  if (p.is_nm()) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c0 = 0; c0 < cols; c0 += p.m) {
        const int64_t len = std::min<int64_t>(p.m, cols - c0);
        mark_lowest(score + r * cols + c0, len, 1, len - nm_keep(p, len), mask.data() + r * cols + c0);
      }
  } else if (scope == MaskScope::Row) {
    const int64_t k = std::llround(p.ratio * double(cols));
    for (int64_t r = 0; r < rows; ++r) mark_lowest(score + r * cols, cols, 1, k, mask.data() + r * cols);
  } else {
    mark_lowest(score, rows * cols, 1, std::llround(p.ratio * double(rows * cols)), mask.data());
  }
  return mask;
}

double zero_fraction(const float* w, int64_t count) {
  int64_t z = 0;
  for (int64_t i = 0; i < count; ++i) z += w[i] == 0.0f;
  return count > 0 ? double(z) / double(count) : 0.0;
}

}  // namespace shrink::prune
