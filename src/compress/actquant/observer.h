// Activation-range observers for static activation quantization: an Observer
// watches one tensor (a Linear's input) over calibration batches and then
// yields the scale / zero point of its int grid.
//
// Convention: x ~ scale * (q - zero), q in [qmin, qmax].
//  symmetric:  zero = 0, q in [-(2^(b-1) - 1), 2^(b-1) - 1] (+-127 for 8 bits,
//              as SmoothQuant and TensorRT use), scale = T / qmax for a clip
//              threshold T.
//  asymmetric: q in [0, 2^b - 1], the range widened to contain 0 and the
//              integer zero point nudged so that 0.0 is exactly representable
//              (Jacob et al. 2018, "Quantization and Training of Neural
//              Networks for Efficient Integer-Arithmetic-Only Inference", 2.3).
//
// Observers: MinMax (running min/max), Ema (PyTorch's
// MovingAverageMinMaxObserver), and three over a histogram: Percentile, Mse
// (least expected squared error) and Kl (TensorRT's entropy calibration,
// Migacz 2017). docs/observers.md gives the algorithms and measured figures.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shrink::actquant {

// The quantization parameters of one tensor (or one row / token).
struct QParams {
  float scale = 1;
  int32_t zero = 0;
  int32_t qmin = -127, qmax = 127;
  // The clip range chosen: the grid's ends scale * (qmin - zero) and
  // scale * (qmax - zero) (symmetric: -T, T up to float rounding; asymmetric:
  // the nudged range).
  float lo = 0, hi = 0;

  // Nearest code (round half to even), clamped to [qmin, qmax] (NaN: qmin).
  int32_t quantize(float x) const {
    const float q = std::nearbyint(x / scale) + float(zero);
    return q > float(qmin) ? (q < float(qmax) ? int32_t(q) : qmax) : qmin;
  }
  float dequantize(int32_t q) const { return scale * float(q - zero); }
};

enum class ObserverKind { MinMax, Ema, Percentile, Mse, Kl };

struct ObserverSpec {
  ObserverKind kind = ObserverKind::MinMax;
  int bits = 8;               // 2..8
  bool symmetric = true;      // Kl requires symmetric
  double percentile = 99.99;  // Percentile: the share (in %) of values kept inside the range, in (0, 100]
  double ema_decay = 0.9;     // Ema: m = decay * m + (1 - decay) * batch value, in [0, 1)
  int bins = 2048;            // Percentile / Mse / Kl: histogram bins, even, 16..8192 (Kl: >= 2^(bits-1))
};

// "minmax", "ema", "ema:0.95", "percentile", "percentile:99.9", "mse", "kl"
// (case-insensitive). Sets kind and its parameter; bits, symmetric and bins
// keep their defaults. Throws shrink::Error listing the valid names.
ObserverSpec parse_observer(const std::string& s);
// The name parse_observer() reads back: "minmax", "ema:0.9", "percentile:99.99", "mse", "kl".
std::string observer_name(const ObserverSpec& spec);

class Observer {
 public:
  virtual ~Observer();
  // n values of one batch. Throws (leaving the observer unchanged) on a NaN or Inf.
  virtual void observe(const float* x, int64_t n) = 0;
  // Throws if nothing has been observed yet.
  virtual QParams params() const = 0;
};

// Validates the spec (bits, percentile, decay, bins; Kl only symmetric).
std::unique_ptr<Observer> make_observer(const ObserverSpec& spec);

// The parameters of the clip range [lo, hi] (lo <= hi, finite): symmetric uses
// T = max(|lo|, |hi|); asymmetric the range [min(lo, 0), max(hi, 0)], nudged.
// A zero range gives scale 1.
QParams params_from_range(float lo, float hi, int bits, bool symmetric);

// Per-row min/max parameters of a row-major {rows, cols} matrix: per output
// channel weight scales, or per-token dynamic activation scales.
std::vector<QParams> per_row_params(const float* w, int64_t rows, int64_t cols, int bits, bool symmetric);

// Mean squared error of quantizing x with p and back (fake quantization).
double fake_quant_mse(const float* x, int64_t n, const QParams& p);

// A histogram of the observed values over [lo, lo + bins * width): of |x|
// (absolute, for symmetric ranges; lo = 0) or of x (lo <= 0 <= hi). The first
// batch with a non-zero value sets the range (its max |x|, or [min(x, 0),
// max(x, 0)]); a batch outside it doubles the range by merging adjacent bin
// pairs, towards the side that overflowed, until it fits. Counts are kept
// exactly; only resolution is lost. Values on the upper edge go in the last bin.
class Histogram {
 public:
  Histogram(int bins, bool absolute);
  void add(const float* x, int64_t n);  // throws on NaN/Inf, leaving the histogram unchanged

  int bins() const { return bins_; }
  bool absolute() const { return absolute_; }
  double lo() const { return lo_; }
  double width() const { return width_; }  // 0 until a non-zero value arrives
  double hi() const { return lo_ + width_ * bins_; }
  // Count of bin j, [lo + j * width, lo + (j + 1) * width). Zeros seen before
  // the range was set are in the bin holding 0.
  int64_t count(int j) const;
  int64_t total() const { return total_; }
  float min() const { return min_; }  // exact extremes of the observed x (not |x|)
  float max() const { return max_; }
  float max_abs() const { return std::fmax(-min_, max_); }
  // The value below which a share `frac` (0..1) of the counts lies, linear within a bin.
  double quantile(double frac) const;

 private:
  void widen(double need_lo, double need_hi);
  int bins_;
  bool absolute_;
  double lo_ = 0, width_ = 0;
  std::vector<int64_t> count_;
  int64_t zeros_ = 0;  // zeros seen while width_ == 0
  int64_t total_ = 0;
  float min_ = 0, max_ = 0;
};

// Range choosers on a histogram; symmetric iff h.absolute(). Results are
// clamped to the observed range.
// Percentile: absolute, T = the `percentile`% quantile of |x|; otherwise two
// sided, (100 - percentile)/2 % cut from each tail.
QParams percentile_params(const Histogram& h, double percentile, int bits);
// Mse: the range with the least expected squared error of the histogram's
// values (uniform within a bin; rounding inside the range, clipping outside):
// absolute, T from every bin edge below max|x| and max|x| itself; otherwise a
// greedy path over (lo, hi) bin edges, one end moving in by a bin per step.
QParams mse_params(const Histogram& h, int bits);
// Kl: TensorRT's entropy calibration on an absolute histogram; T = i * width
// for the number of kept bins i in [2^(bits-1), the bin holding the max] with
// the least KL divergence. Throws for a signed histogram.
QParams kl_params(const Histogram& h, int bits);
// The expected total squared error of quantizing the histogram's values with
// p (values uniform within each bin; absolute histograms assume a symmetric grid).
double histogram_sq_error(const Histogram& h, const QParams& p);

}  // namespace shrink::actquant
