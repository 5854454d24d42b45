#include "compress/actquant/observer.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <charconv>
#include <limits>

#include "core/error.h"

namespace shrink::actquant {

namespace {

constexpr const char* kValidNames = "minmax, ema[:DECAY], percentile[:P], mse, kl";

void check_bits(int bits) {
  SHRINK_CHECK(bits >= 2 && bits <= 8, "activation quantization: bits must be in [2, 8], got ", bits);
}

struct Range {
  float lo = std::numeric_limits<float>::infinity(), hi = -std::numeric_limits<float>::infinity();
};

// Min and max of a batch; throws on NaN/Inf before anything is changed.
Range scan(const float* x, int64_t n) {
  SHRINK_CHECK(n >= 0, "activation observer: negative value count ", n);
  SHRINK_CHECK(n == 0 || x != nullptr, "activation observer: null data for ", n, " values");
  Range r;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    SHRINK_CHECK(std::isfinite(v), "activation observer: non-finite value ", v, " at index ", i, " of a batch of ",
                 n, " (NaN/Inf in the activations: the model or its inputs are broken)");
    r.lo = std::min(r.lo, v);
    r.hi = std::max(r.hi, v);
  }
  return r;
}

const char* kind_name(ObserverKind k) {
  switch (k) {
    case ObserverKind::MinMax: return "minmax";
    case ObserverKind::Ema: return "ema";
    case ObserverKind::Percentile: return "percentile";
    case ObserverKind::Mse: return "mse";
    case ObserverKind::Kl: return "kl";
  }
  return "?";
}

std::string number(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back to v
  return std::string(buf, r.ptr);
}

void validate(const ObserverSpec& s) {
  check_bits(s.bits);
  const std::string name = observer_name(s);
  SHRINK_CHECK(s.percentile > 0 && s.percentile <= 100, "observer '", name, "': percentile must be in (0, 100]");
  SHRINK_CHECK(s.ema_decay >= 0 && s.ema_decay < 1, "observer '", name, "': ema decay must be in [0, 1)");
  if (s.kind == ObserverKind::Percentile || s.kind == ObserverKind::Mse || s.kind == ObserverKind::Kl)
    SHRINK_CHECK(s.bins >= 16 && s.bins <= 8192 && s.bins % 2 == 0, "observer '", name,
                 "': histogram bins must be even and in [16, 8192], got ", s.bins);
  if (s.kind == ObserverKind::Kl) {
    SHRINK_CHECK(s.symmetric, "observer 'kl' (TensorRT entropy calibration) is symmetric only; for asymmetric "
                 "activation ranges use mse or percentile");
    SHRINK_CHECK(s.bins >= (1 << (s.bits - 1)), "observer 'kl': needs at least 2^(bits-1) = ", 1 << (s.bits - 1),
                 " histogram bins, got ", s.bins);
  }
}

void require_data(bool seen, const char* who) {
  SHRINK_CHECK(seen, "activation observer '", who,
               "': params() called before any values were observed (run calibration batches through it first)");
}

// ---- observers ----

class MinMaxObserver final : public Observer {
 public:
  explicit MinMaxObserver(const ObserverSpec& s) : spec_(s) {}
  void observe(const float* x, int64_t n) override {
    const Range r = scan(x, n);
    if (n == 0) return;
    lo_ = seen_ ? std::min(lo_, r.lo) : r.lo;
    hi_ = seen_ ? std::max(hi_, r.hi) : r.hi;
    seen_ = true;
  }
  QParams params() const override {
    require_data(seen_, "minmax");
    return params_from_range(lo_, hi_, spec_.bits, spec_.symmetric);
  }

 private:
  ObserverSpec spec_;
  bool seen_ = false;
  float lo_ = 0, hi_ = 0;
};

// PyTorch's MovingAverageMinMaxObserver: the first batch sets min/max, later
// ones move them by (1 - decay) towards the batch's min/max.
class EmaObserver final : public Observer {
 public:
  explicit EmaObserver(const ObserverSpec& s) : spec_(s) {}
  void observe(const float* x, int64_t n) override {
    const Range r = scan(x, n);
    if (n == 0) return;
    if (!seen_) {
      lo_ = r.lo, hi_ = r.hi;
    } else {
      const double d = spec_.ema_decay;
      lo_ = d * lo_ + (1 - d) * r.lo;
      hi_ = d * hi_ + (1 - d) * r.hi;
    }
    seen_ = true;
  }
  QParams params() const override {
    require_data(seen_, "ema");
    return params_from_range(float(lo_), float(hi_), spec_.bits, spec_.symmetric);
  }

 private:
  ObserverSpec spec_;
  bool seen_ = false;
  double lo_ = 0, hi_ = 0;
};

class HistogramObserver final : public Observer {
 public:
  explicit HistogramObserver(const ObserverSpec& s) : spec_(s), h_(s.bins, s.symmetric) {}
  void observe(const float* x, int64_t n) override { h_.add(x, n); }
  QParams params() const override {
    require_data(h_.total() > 0, kind_name(spec_.kind));
    switch (spec_.kind) {
      case ObserverKind::Percentile: return percentile_params(h_, spec_.percentile, spec_.bits);
      case ObserverKind::Mse: return mse_params(h_, spec_.bits);
      case ObserverKind::Kl: return kl_params(h_, spec_.bits);
      default: break;
    }
    fail("activation observer: not a histogram observer");
  }

 private:
  ObserverSpec spec_;
  Histogram h_;
};

// ---- expected squared error of a histogram on a grid ----

// An antiderivative of (x - nearest multiple of s)^2: m = round(x / s) full
// periods of s^3 / 12, plus r^3 / 3 for the offset r = x - m s (continuous at
// the period ends, where r jumps from s/2 to -s/2). floor() by truncation, as
// std::floor is a library call on baseline x86-64 and this is the MSE
// search's inner loop; |x / s| <= 2^bits here.
inline double sawtooth_integral(double x, double s, double inv_s) {
  const double y = x * inv_s + 0.5;
  double m = double(int64_t(y));
  if (m > y) m -= 1;
  const double r = x - m * s;
  return m * s * s * s / 12 + r * r * r / 3;
}

struct Grid {
  double s, inv_s, lo, hi;  // step, 1 / step, clip ends (both grid points)
};

// Integral over [a, b] of the squared error of quantizing x on g: rounding
// inside [lo, hi], clipping to lo / hi outside.
inline double segment_error(double a, double b, const Grid& g) {
  double e = 0;
  if (a < g.lo) {
    const double u = std::min(b, g.lo) - g.lo, v = a - g.lo;
    e += (u * u * u - v * v * v) / 3;
  }
  if (b > g.hi) {
    const double u = b - g.hi, v = std::max(a, g.hi) - g.hi;
    e += (u * u * u - v * v * v) / 3;
  }
  const double m0 = std::max(a, g.lo), m1 = std::min(b, g.hi);
  if (m1 > m0) e += sawtooth_integral(m1, g.s, g.inv_s) - sawtooth_integral(m0, g.s, g.inv_s);
  return e;
}

// The expected total squared error of a histogram's values (uniform within
// each bin) on a grid. Bins wholly outside the clip range are clipped to its
// end: their error comes from sums of their counts' moments (below the range
// from the bottom, above it from the top); the rest are integrated bin by
// bin, the sawtooth integral shared between neighbouring bins' edges.
class ErrorModel {
 public:
  explicit ErrorModel(const Histogram& h) : h_(h), n_(size_t(h.bins())) {
    below_.assign(3 * (n_ + 1), 0.0);
    above_.assign(3 * (n_ + 1), 0.0);
    const double w = h.width();
    auto moments = [&](size_t j, double* m) {
      const double a = h.lo() + double(j) * w, b = a + w, c = double(h.count(int(j)));
      m[0] = c, m[1] = c * (a + b) / 2, m[2] = c * (a * a + a * b + b * b) / 3;
    };
    double m[3];
    for (size_t j = 0; j < n_; ++j) {  // below_[3 k + i]: moment i of bins [0, k)
      moments(j, m);
      for (int i = 0; i < 3; ++i) below_[3 * (j + 1) + size_t(i)] = below_[3 * j + size_t(i)] + m[i];
    }
    for (size_t j = n_; j-- > 0;) {  // above_[3 k + i]: moment i of bins [k, n)
      moments(j, m);
      for (int i = 0; i < 3; ++i) above_[3 * j + size_t(i)] = above_[3 * (j + 1) + size_t(i)] + m[i];
    }
  }

  double error(const QParams& p) const {
    if (h_.width() == 0) {  // only zeros
      const double z = p.dequantize(p.quantize(0.0f));
      return z * z * double(h_.total());
    }
    const double step = p.scale;
    const Grid g{step, 1 / step, double(p.dequantize(p.qmin)), double(p.dequantize(p.qmax))};
    const double w = h_.width(), lo = h_.lo();
    const int n = int(n_);
    // Bins [0, jl) lie below g.lo, bins [jh, n) above g.hi.
    const int jl = int(std::clamp(std::floor((g.lo - lo) / w), 0.0, double(n)));
    const int jh = int(std::clamp(std::ceil((g.hi - lo) / w), double(jl), double(n)));
    const double* b = &below_[3 * size_t(jl)];
    const double* a = &above_[3 * size_t(jh)];
    double e = (b[2] - 2 * g.lo * b[1] + g.lo * g.lo * b[0]) + (a[2] - 2 * g.hi * a[1] + g.hi * g.hi * a[0]);
    auto saw = [&](double x) { return sawtooth_integral(x, g.s, g.inv_s); };
    double inside = 0, g_edge = 0;
    int edge = -1;  // the edge index g_edge belongs to
    for (int j = jl; j < jh; ++j) {
      const int64_t c = h_.count(j);
      if (c == 0) continue;
      const double x0 = lo + j * w, x1 = x0 + w;
      if (x0 >= g.lo && x1 <= g.hi) {
        const double g0 = edge == j ? g_edge : saw(x0);
        g_edge = saw(x1), edge = j + 1;
        inside += double(c) * (g_edge - g0);
      } else {
        inside += double(c) * segment_error(x0, x1, g);
      }
    }
    return std::max(e, 0.0) + inside / w;
  }

 private:
  const Histogram& h_;
  size_t n_;
  std::vector<double> below_, above_;
};

// Smoothing of a distribution's zero bins, as MXNet's _smooth_distribution
// (contrib/quantization.py, eps = 1e-4, on counts): zero bins get eps, the
// non-zero ones give up the same mass in total (eps1 each). eps is scaled
// down if eps1 would take more than half of the smallest non-zero bin.
struct Smoothing {
  double eps, eps1;
  Smoothing(int64_t zeros, int64_t nonzeros, double min_nonzero) {
    eps = 1e-4;
    eps1 = nonzeros > 0 ? eps * double(zeros) / double(nonzeros) : 0;
    if (eps1 >= 0.5 * min_nonzero) {
      const double f = 0.5 * min_nonzero / eps1;
      eps *= f, eps1 *= f;
    }
  }
};

// KL(P || Q) for TensorRT's candidate of i kept bins (see kl_params), both
// smoothed and normalised. c: the histogram's counts; folded: the counts of
// bins >= i, added to P's bin i-1; levels: 2^(bits-1); level_q: scratch.
// Zero bins of P are zero in Q as well, so each adds the same constant term.
double candidate_kl(const std::vector<double>& c, double folded, int i, int levels, std::vector<double>& level_q) {
  int64_t zeros_p = 0, zeros_q = 0;
  double min_p = HUGE_VAL, min_q = HUGE_VAL, sum_p = folded, sum_q = 0;
  for (int l = 0; l < levels; ++l) {  // level l holds bins j with floor(j * levels / i) == l
    const int js = int((int64_t(l) * i + levels - 1) / levels), je = int((int64_t(l + 1) * i + levels - 1) / levels);
    double sum = 0;
    int nz = 0;
    for (int j = js; j < je; ++j) {
      const double pj = c[size_t(j)] + (j == i - 1 ? folded : 0.0);
      sum += c[size_t(j)];
      if (pj != 0) ++nz, min_p = std::min(min_p, pj);
    }
    sum_p += sum;
    sum_q += sum;
    const double qv = nz > 0 ? sum / nz : 0.0;
    level_q[size_t(l)] = qv;
    zeros_p += (je - js) - nz;
    zeros_q += (je - js) - (qv > 0 ? nz : 0);
    if (qv > 0) min_q = std::min(min_q, qv);
  }
  if (sum_q <= 0) return HUGE_VAL;  // everything folded: Q is empty
  const Smoothing sp(zeros_p, i - zeros_p, min_p), sq(zeros_q, i - zeros_q, min_q);
  double kl = 0;
  for (int l = 0; l < levels; ++l) {
    const int js = int((int64_t(l) * i + levels - 1) / levels), je = int((int64_t(l + 1) * i + levels - 1) / levels);
    const double qv = level_q[size_t(l)];
    const double qj = (qv > 0 ? qv - sq.eps1 : sq.eps) / sum_q;
    for (int j = js; j < je; ++j) {
      const double pj = c[size_t(j)] + (j == i - 1 ? folded : 0.0);
      if (pj == 0) continue;
      const double pn = (pj - sp.eps1) / sum_p;
      kl += pn * std::log(pn / qj);
    }
  }
  const double pz = sp.eps / sum_p, qz = sq.eps / sum_q;
  return kl + double(zeros_p) * pz * std::log(pz / qz);
}

}  // namespace

// ---- names ----

ObserverSpec parse_observer(const std::string& text) {
  std::string s = text;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t colon = s.find(':');
  const std::string name = s.substr(0, colon);
  const bool has_arg = colon != std::string::npos;
  const std::string arg = has_arg ? s.substr(colon + 1) : "";
  auto read = [&](double& out, const char* what) {
    double v = 0;
    const auto r = std::from_chars(arg.data(), arg.data() + arg.size(), v);
    SHRINK_CHECK(!arg.empty() && r.ec == std::errc() && r.ptr == arg.data() + arg.size(), "observer '", text,
                 "': ", what, " must be a number");
    out = v;
  };
  ObserverSpec spec;
  if (name == "minmax") {
    spec.kind = ObserverKind::MinMax;
  } else if (name == "ema") {
    spec.kind = ObserverKind::Ema;
    if (has_arg) read(spec.ema_decay, "the EMA decay");
  } else if (name == "percentile") {
    spec.kind = ObserverKind::Percentile;
    if (has_arg) read(spec.percentile, "the percentile");
  } else if (name == "mse") {
    spec.kind = ObserverKind::Mse;
  } else if (name == "kl") {
    spec.kind = ObserverKind::Kl;
  } else {
    fail("unknown activation observer '", text, "' (valid: ", kValidNames, ")");
  }
  SHRINK_CHECK(!has_arg || spec.kind == ObserverKind::Ema || spec.kind == ObserverKind::Percentile, "observer '",
               text, "': '", name, "' takes no parameter (valid: ", kValidNames, ")");
  SHRINK_CHECK(spec.ema_decay >= 0 && spec.ema_decay < 1, "observer '", text, "': the EMA decay must be in [0, 1)");
  SHRINK_CHECK(spec.percentile > 0 && spec.percentile <= 100, "observer '", text,
               "': the percentile must be in (0, 100]");
  return spec;
}

std::string observer_name(const ObserverSpec& spec) {
  std::string s = kind_name(spec.kind);
  if (spec.kind == ObserverKind::Ema || spec.kind == ObserverKind::Percentile) {
    s.push_back(':');
    s.append(number(spec.kind == ObserverKind::Ema ? spec.ema_decay : spec.percentile));
  }
  return s;
}

Observer::~Observer() = default;

std::unique_ptr<Observer> make_observer(const ObserverSpec& spec) {
  validate(spec);
  switch (spec.kind) {
    case ObserverKind::MinMax: return std::make_unique<MinMaxObserver>(spec);
    case ObserverKind::Ema: return std::make_unique<EmaObserver>(spec);
    case ObserverKind::Percentile:
    case ObserverKind::Mse:
    case ObserverKind::Kl: return std::make_unique<HistogramObserver>(spec);
  }
  fail("activation observer: unknown kind ", int(spec.kind));
}

// ---- parameters ----

QParams params_from_range(float lo, float hi, int bits, bool symmetric) {
  check_bits(bits);
  SHRINK_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "activation quantization: bad range [", lo, ", ",
               hi, "]");
  QParams p;
  if (symmetric) {
    p.qmax = (1 << (bits - 1)) - 1;
    p.qmin = -p.qmax;
    const float t = std::max(std::fabs(lo), std::fabs(hi));
    p.scale = t > 0 ? std::max(t / float(p.qmax), FLT_MIN) : 1.0f;
  } else {
    p.qmin = 0;
    p.qmax = (1 << bits) - 1;
    const double a = std::min(lo, 0.0f), b = std::max(hi, 0.0f);
    if (b > a) {
      p.scale = std::max(float((b - a) / double(p.qmax - p.qmin)), FLT_MIN);
      // The zero point is the integer nearest to where 0.0 falls, so 0.0 is a code.
      const double z = std::nearbyint(double(p.qmin) - a / double(p.scale));
      p.zero = int32_t(std::clamp(z, double(p.qmin), double(p.qmax)));
    }
  }
  p.lo = p.dequantize(p.qmin);
  p.hi = p.dequantize(p.qmax);
  return p;
}

std::vector<QParams> per_row_params(const float* w, int64_t rows, int64_t cols, int bits, bool symmetric) {
  check_bits(bits);
  SHRINK_CHECK(rows >= 0 && cols > 0, "per_row_params: bad shape {", rows, ", ", cols, "}");
  SHRINK_CHECK(rows == 0 || w != nullptr, "per_row_params: null data");
  std::vector<QParams> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    const float* row = w + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      SHRINK_CHECK(std::isfinite(row[c]), "per_row_params: non-finite value ", row[c], " at row ", r, ", column ", c);
      lo = std::min(lo, row[c]);
      hi = std::max(hi, row[c]);
    }
    out[size_t(r)] = params_from_range(lo, hi, bits, symmetric);
  }
  return out;
}

double fake_quant_mse(const float* x, int64_t n, const QParams& p) {
  if (n <= 0) return 0;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(p.dequantize(p.quantize(x[i]))) - double(x[i]);
    sum += d * d;
  }
  return sum / double(n);
}

// ---- histogram ----

Histogram::Histogram(int bins, bool absolute) : bins_(bins), absolute_(absolute) {
  SHRINK_CHECK(bins >= 2 && bins % 2 == 0, "histogram: bins must be even and >= 2, got ", bins);
  count_.assign(size_t(bins), 0);
}

int64_t Histogram::count(int j) const {
  SHRINK_CHECK(j >= 0 && j < bins_, "histogram: bin ", j, " out of [0, ", bins_, ")");
  return count_[size_t(j)];
}

void Histogram::widen(double need_lo, double need_hi) {
  const int half = bins_ / 2;
  while (need_hi > hi() || need_lo < lo_) {
    const bool up = need_hi > hi() && (need_lo >= lo_ || need_hi - hi() >= lo_ - need_lo);
    std::vector<int64_t> merged(size_t(bins_), 0);
    const int off = up ? 0 : half;  // the merged bins take the half away from the overflow
    for (int k = 0; k < half; ++k) merged[size_t(off + k)] = count_[size_t(2 * k)] + count_[size_t(2 * k + 1)];
    if (!up) lo_ -= width_ * bins_;
    width_ *= 2;
    count_.swap(merged);
  }
}

void Histogram::add(const float* x, int64_t n) {
  const Range r = scan(x, n);
  if (n == 0) return;
  min_ = total_ > 0 ? std::min(min_, r.lo) : r.lo;
  max_ = total_ > 0 ? std::max(max_, r.hi) : r.hi;
  total_ += n;
  const double need_lo = absolute_ ? 0.0 : std::min(double(r.lo), 0.0);
  const double need_hi = absolute_ ? std::max(-double(r.lo), double(r.hi)) : std::max(double(r.hi), 0.0);
  auto bin_of = [&](double v) {
    const double j = std::floor((v - lo_) / width_);
    return j < 0 ? 0 : j >= bins_ ? bins_ - 1 : int(j);
  };
  if (width_ == 0) {
    if (need_hi <= need_lo) {  // only zeros so far: no range to set yet
      zeros_ += n;
      return;
    }
    lo_ = need_lo;
    width_ = (need_hi - need_lo) / bins_;
    count_[size_t(bin_of(0.0))] += zeros_;
    zeros_ = 0;
  } else {
    widen(need_lo, need_hi);
  }
  for (int64_t i = 0; i < n; ++i) ++count_[size_t(bin_of(absolute_ ? std::fabs(double(x[i])) : double(x[i])))];
}

double Histogram::quantile(double frac) const {
  if (width_ == 0) return 0;
  const double target = std::clamp(frac, 0.0, 1.0) * double(total_);
  double cum = 0;
  for (int j = 0; j < bins_; ++j) {
    const double c = double(count_[size_t(j)]);
    if (c > 0 && cum + c >= target) return lo_ + (j + (target - cum) / c) * width_;
    cum += c;
  }
  return hi();
}

// ---- range choosers ----

QParams percentile_params(const Histogram& h, double percentile, int bits) {
  check_bits(bits);
  SHRINK_CHECK(h.total() > 0, "percentile observer: empty histogram");
  SHRINK_CHECK(percentile > 0 && percentile <= 100, "percentile observer: percentile must be in (0, 100], got ",
               percentile);
  if (h.absolute()) {
    const float t = std::min(float(h.quantile(percentile / 100)), h.max_abs());
    return params_from_range(0, t, bits, true);
  }
  const double tail = (1 - percentile / 100) / 2;
  const float lo = std::max(float(h.quantile(tail)), h.min());
  const float hi = std::min(float(h.quantile(1 - tail)), h.max());
  return params_from_range(std::min(lo, hi), hi, bits, false);
}

double histogram_sq_error(const Histogram& h, const QParams& p) { return ErrorModel(h).error(p); }

QParams mse_params(const Histogram& h, int bits) {
  check_bits(bits);
  SHRINK_CHECK(h.total() > 0, "mse observer: empty histogram");
  const bool sym = h.absolute();
  QParams best = sym ? params_from_range(0, h.max_abs(), bits, true) : params_from_range(h.min(), h.max(), bits, false);
  if (h.width() == 0) return best;
  const ErrorModel model(h);
  double best_err = model.error(best);
  auto consider = [&](float lo, float hi) {
    const QParams p = params_from_range(lo, hi, bits, sym);
    const double e = model.error(p);
    if (e < best_err) best_err = e, best = p;
    return e;
  };
  const double w = h.width();
  if (sym) {
    // Every bin edge below the observed max is a candidate threshold.
    for (int k = 1; k <= h.bins() && k * w < h.max_abs(); ++k) consider(0, float(k * w));
    return best;
  }
  // Asymmetric: start from the bin edges around [min, max] and move one end
  // in by a bin at a time, whichever gives the smaller error, until both ends
  // reach the bins around 0 (the range always holds 0); keep the best seen.
  auto edge = [&](int i) { return h.lo() + i * w; };
  int ia = std::clamp(int(std::floor((h.min() - h.lo()) / w)), 0, h.bins());
  int ib = std::clamp(int(std::ceil((h.max() - h.lo()) / w)), 0, h.bins());
  const int za = int(std::floor(-h.lo() / w)), zb = int(std::ceil(-h.lo() / w));
  while (true) {
    const bool can_a = ia + 1 <= za, can_b = ib - 1 >= zb;
    if (!can_a && !can_b) break;
    const double ea = can_a ? consider(float(edge(ia + 1)), float(edge(ib))) : HUGE_VAL;
    const double eb = can_b ? consider(float(edge(ia)), float(edge(ib - 1))) : HUGE_VAL;
    if (ea <= eb) ++ia;
    else --ib;
  }
  return best;
}

// TensorRT's entropy calibration (Migacz 2017, "8-bit Inference with
// TensorRT", GTC; as in NVIDIA pytorch-quantization's _compute_amax_entropy
// and MXNet's _get_optimal_threshold): for each number i of kept bins, P is
// the first i bins with everything beyond folded into bin i-1; Q merges the
// (unfolded) first i bins into 2^(bits-1) levels and spreads each level's
// count evenly over the bins of that level that are non-zero in P. The i with
// the least KL(P || Q) wins; the threshold is its upper edge, i * width
// (pytorch-quantization's calib_bin_edges[i]; MXNet's edge convention too).
QParams kl_params(const Histogram& h, int bits) {
  check_bits(bits);
  SHRINK_CHECK(h.absolute(), "kl observer: needs a histogram of |x| (the KL observer is symmetric only)");
  SHRINK_CHECK(h.total() > 0, "kl observer: empty histogram");
  const int levels = 1 << (bits - 1), n = h.bins();
  SHRINK_CHECK(n >= levels, "kl observer: needs at least ", levels, " bins, got ", n);
  if (h.width() == 0) return params_from_range(0, 0, bits, true);
  const size_t nb = static_cast<size_t>(n), nl = static_cast<size_t>(levels);
  std::vector<double> c(nb), tail(nb + 1, 0.0);
  for (int j = 0; j < n; ++j) c[size_t(j)] = double(h.count(j));
  for (int j = n - 1; j >= 0; --j) tail[size_t(j)] = tail[size_t(j) + 1] + c[size_t(j)];
  std::vector<double> level_q(nl);
  // Candidates end at the bin holding the max (all of [0, bins] when the range
  // never widened); wider ones only add empty bins and clamp to the max anyway.
  int last = n;
  while (last > levels && c[size_t(last) - 1] == 0) --last;
  double best_kl = HUGE_VAL;
  int best_i = last;
  for (int i = levels; i <= last; ++i) {
    const double kl = candidate_kl(c, tail[size_t(i)], i, levels, level_q);
    if (kl < best_kl) best_kl = kl, best_i = i;
  }
  const float t = std::min(float(best_i * h.width()), h.max_abs());
  return params_from_range(0, t, bits, true);
}

}  // namespace shrink::actquant
