#include "compress/quant/spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>

#include "core/error.h"

namespace shrink::quant {

namespace {

// NF4: the 16 quantiles of N(0, 1) normalised to [-1, 1] (Dettmers et al. 2023, QLoRA, appendix E).
constexpr float kNF4[16] = {-1.0f, -0.6961928f, -0.5250731f, -0.3949175f, -0.2844414f, -0.1847734f,
                            -0.0910500f, 0.0f, 0.0795803f, 0.1609302f, 0.2461123f, 0.3379152f,
                            0.4407098f, 0.5626170f, 0.7229568f, 1.0f};

// Which codes of a minifloat are not numbers: IEEE-style (the all-ones
// exponent is Inf/NaN: E5M2), OCP "fn" (only all-ones exponent and mantissa is
// NaN: E4M3), or none (E2M1, FP4).
enum class Specials { Ieee, Fn, None };

// Every finite value of a sign + e-bit exponent + m-bit mantissa float with
// subnormals and the given bias (OCP Microscaling / FP8 formats spec).
std::vector<float> minifloat_values(int e_bits, int m_bits, int bias, Specials sp) {
  std::vector<float> v;
  const int e_max = (1 << e_bits) - 1, m_max = (1 << m_bits) - 1;
  for (int sign = 0; sign < 2; ++sign)
    for (int e = 0; e <= e_max; ++e)
      for (int m = 0; m <= m_max; ++m) {
        if (e == e_max && (sp == Specials::Ieee || (sp == Specials::Fn && m == m_max))) continue;  // Inf/NaN
        const float frac = float(m) / float(m_max + 1);
        const float mag = e == 0 ? std::ldexp(frac, 1 - bias) : std::ldexp(1.0f + frac, e - bias);
        v.push_back(sign ? -mag : mag);
      }
  return v;
}

std::vector<float> code_levels(const QuantSpec& s) {
  switch (s.code) {
    case Code::NF4: return {std::begin(kNF4), std::end(kNF4)};
    case Code::FP4: return minifloat_values(2, 1, 1, Specials::None);  // e2m1: 0, 0.5, 1, 1.5, 2, 3, 4, 6
    case Code::FP8_E4M3: return minifloat_values(4, 3, 7, Specials::Fn);  // max 448
    case Code::FP8_E5M2: return minifloat_values(5, 2, 15, Specials::Ieee);  // max 57344
    case Code::Int: break;
  }
  std::vector<float> v(static_cast<size_t>(1) << s.bits);
  for (size_t q = 0; q < v.size(); ++q) v[q] = float(q);
  return v;
}

}  // namespace

QuantSpec QuantSpec::parse(const std::string& text_in) {
  std::string text = text_in;
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::regex re(R"((int|nf|fp)(\d)(e4m3|e5m2)?(g(\d+)|ch|t)?(sym|asym)?(clip)?)", std::regex::ECMAScript);
  std::smatch m;
  SHRINK_CHECK(std::regex_match(text, m, re), "unknown quantization format '", text,
               "' (examples: int4g128, int3g64sym, int8ch, nf4g64, fp4g32, fp8e4m3ch; add 'clip' for a clipping search)");
  QuantSpec s;
  const std::string kind = m[1].str();
  s.bits = std::stoi(m[2].str());
  if (kind == "nf") {
    SHRINK_CHECK(s.bits == 4, "nf", s.bits, ": only nf4 exists");
    s.code = Code::NF4;
  } else if (kind == "fp") {
    SHRINK_CHECK(s.bits == 4 || (s.bits == 8 && m[3].matched), "'", text, "': use fp4, fp8e4m3 or fp8e5m2");
    s.code = s.bits == 4 ? Code::FP4 : (m[3].str() == "e5m2" ? Code::FP8_E5M2 : Code::FP8_E4M3);
  } else {
    SHRINK_CHECK(s.bits >= 2 && s.bits <= 8, "integer codes take 2..8 bits, got ", s.bits);
  }
  if (s.code != Code::Int) s.symmetric = true;
  if (m[5].matched) s.group = std::stoll(m[5].str());
  else if (m[4].str() == "ch") s.group = 0;
  else if (m[4].str() == "t") s.group = -1;
  SHRINK_CHECK(s.group != 0 || m[4].matched, "internal: group parse");
  SHRINK_CHECK(s.group == -1 || s.group == 0 || s.group >= 8, "group size ", s.group, " is too small (>= 8)");
  if (m[6].matched) {
    SHRINK_CHECK(s.code == Code::Int || m[6].str() == "sym", "float codes are symmetric");
    s.symmetric = m[6].str() == "sym";
  }
  s.clip_search = m[7].matched;
  return s;
}

std::string QuantSpec::name() const {
  std::string s;
  switch (code) {
    case Code::Int: s = "int" + std::to_string(bits); break;
    case Code::NF4: s = "nf4"; break;
    case Code::FP4: s = "fp4"; break;
    case Code::FP8_E4M3: s = "fp8e4m3"; break;
    case Code::FP8_E5M2: s = "fp8e5m2"; break;
  }
  s += group > 0 ? "g" + std::to_string(group) : group == 0 ? "ch" : "t";
  if (code == Code::Int) s += symmetric ? "sym" : "";
  return s + (clip_search ? "clip" : "");
}

int64_t QuantSpec::group_len(int64_t cols) const { return group > 0 ? std::min(group, cols) : cols; }

int QuantSpec::levels() const { return static_cast<int>(code_levels(*this).size()); }

double QuantSpec::bits_per_weight(int64_t cols, int64_t rows) const {
  const double params = (code == Code::Int && !symmetric) ? 32 : 16;  // f16 scale (+ f16 zero)
  if (group == -1) return bits + params / double(cols * rows);
  return bits + params / double(group_len(cols));
}

Codebook::Codebook(const QuantSpec& spec) : spec_(spec), level_(code_levels(spec)) {
  std::sort(level_.begin(), level_.end());
  for (float l : level_) max_abs_level_ = std::max(max_abs_level_, std::fabs(l));
}

GroupParams Codebook::params(float lo, float hi) const {
  GroupParams p;
  if (spec_.code != Code::Int) {
    const float amax = std::max(std::fabs(lo), std::fabs(hi));
    p.scale = amax > 0 ? amax / max_abs_level_ : 1.0f;
    return p;
  }
  const float maxq = float((1 << spec_.bits) - 1);
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (spec_.symmetric) {
    const float amax = std::max(-lo, hi);
    p.scale = amax > 0 ? 2 * amax / maxq : 1.0f;
    p.zero = (maxq + 1) / 2;
  } else {
    if (lo == 0 && hi == 0) lo = -1, hi = 1;
    p.scale = (hi - lo) / maxq;
    p.zero = std::nearbyint(-lo / p.scale);
  }
  return p;
}

uint8_t Codebook::encode(float x, const GroupParams& p) const {
  const float t = x / p.scale + p.zero;
  if (spec_.code == Code::Int)
    return static_cast<uint8_t>(std::clamp(std::nearbyint(t), 0.0f, float(level_.size() - 1)));
  const auto it = std::lower_bound(level_.begin(), level_.end(), t);
  if (it == level_.begin()) return 0;
  if (it == level_.end()) return static_cast<uint8_t>(level_.size() - 1);
  const size_t i = static_cast<size_t>(it - level_.begin());
  return static_cast<uint8_t>(t - level_[i - 1] <= level_[i] - t ? i - 1 : i);
}

GroupParams choose_group_params(const Codebook& cb, const QuantSpec& spec, const float* x, int64_t n,
                                const float* importance) {
  float lo = x[0], hi = x[0];
  for (int64_t i = 1; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  GroupParams best = cb.params(lo, hi);
  // An importance vector means the caller asked for importance-weighted scales
  // (the imatrix method, GPTQ --weighted-scales): min/max ignores it, so search.
  if (!spec.clip_search && !importance) return best;
  auto error = [&](const GroupParams& p) {
    double e = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = x[i] - cb.decode(cb.encode(x[i], p), p);
      e += (importance ? importance[i] : 1.0) * d * d;
    }
    return e;
  };
  double best_err = error(best);
  for (int step = 1; step <= 80; ++step) {
    const float shrink = 1.0f - step / 100.0f;
    const GroupParams p = cb.params(lo * shrink, hi * shrink);
    const double e = error(p);
    if (e < best_err) best_err = e, best = p;
  }
  return best;
}

}  // namespace shrink::quant
