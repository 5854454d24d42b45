// Activation-range observers: params_from_range, MinMax / EMA against hand
// computations, the histogram's widening, and the percentile / MSE / KL
// choosers against analytic values and brute-force searches.
#include "compress/actquant/observer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "core/error.h"

using namespace shrink;
using namespace shrink::actquant;

namespace {

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = nd(rng);
  return x;
}

std::vector<float> uniform(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(lo, hi);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = ud(rng);
  return x;
}

// Feeds x to the observer in `batches` equal batches (the last takes the rest).
void feed(Observer& ob, const std::vector<float>& x, int batches) {
  const int64_t n = int64_t(x.size()), step = n / batches;
  for (int64_t b = 0; b < n; b += step) ob.observe(x.data() + b, std::min(step, n - b));
}

QParams observe_all(const std::string& name, const std::vector<float>& x, int batches, bool symmetric = true,
                    int bits = 8) {
  ObserverSpec s = parse_observer(name);
  s.symmetric = symmetric;
  s.bits = bits;
  auto ob = make_observer(s);
  feed(*ob, x, batches);
  return ob->params();
}

// Sum of |difference| between h's counts and a direct binning of values
// (|x| for absolute histograms) over h's final range.
int64_t binning_difference(const Histogram& h, const std::vector<float>& x) {
  std::vector<int64_t> direct(size_t(h.bins()), 0);
  for (float v : x) {
    const double a = h.absolute() ? std::fabs(double(v)) : double(v);
    const int j = std::clamp(int(std::floor((a - h.lo()) / h.width())), 0, h.bins() - 1);
    ++direct[size_t(j)];
  }
  int64_t diff = 0;
  for (int j = 0; j < h.bins(); ++j) diff += std::llabs(direct[size_t(j)] - h.count(j));
  return diff;
}

// The threshold with the least empirical MSE of the samples: a scan of every
// candidate symmetric threshold in (0, max|x|] at steps of 8 * `step`, then
// at steps of step / 4 within 16 steps of the best.
double brute_force_mse_threshold(const std::vector<float>& x, int bits, double step, double* best_mse) {
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  double best_t = amax, best = HUGE_VAL;
  auto scan = [&](double from, double to, double dt) {
    for (double t = std::max(from, dt); t <= std::min<double>(to, amax) + 1e-12; t += dt) {
      const double e = fake_quant_mse(x.data(), int64_t(x.size()), params_from_range(0, float(t), bits, true));
      if (e < best) best = e, best_t = t;
    }
  };
  scan(0, amax, 8 * step);
  const double coarse = best_t;
  scan(coarse - 16 * step, coarse + 16 * step, step / 4);
  *best_mse = best;
  return best_t;
}

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// ---- params_from_range ----

TEST(ObserverParams, SymmetricGridForEveryBitWidth) {
  for (int bits = 2; bits <= 8; ++bits) {
    const QParams p = params_from_range(-0.5f, 3.0f, bits, true);
    const int qmax = (1 << (bits - 1)) - 1;
    EXPECT_EQ(p.qmax, qmax) << bits;
    EXPECT_EQ(p.qmin, -qmax) << bits;
    EXPECT_EQ(p.zero, 0);
    EXPECT_FLOAT_EQ(p.scale, 3.0f / float(qmax));
    EXPECT_NEAR(p.hi, 3.0f, 1e-6);
    EXPECT_NEAR(p.lo, -3.0f, 1e-6);
    EXPECT_EQ(p.quantize(3.0f), qmax);
    EXPECT_EQ(p.quantize(-3.0f), -qmax);
    EXPECT_EQ(p.quantize(100.0f), qmax);  // clipped
    EXPECT_EQ(p.quantize(-100.0f), -qmax);
    EXPECT_EQ(p.dequantize(p.quantize(0.0f)), 0.0f);
  }
  EXPECT_EQ(params_from_range(-0.5f, 3.0f, 8, true).qmax, 127);  // SmoothQuant / TensorRT's +-127
}

TEST(ObserverParams, AsymmetricZeroIsExactAndRangeIsCovered) {
  const float ranges[][2] = {{-1.3f, 2.7f}, {0.2f, 5.0f}, {-4.0f, -0.1f}, {-1e-3f, 7e3f}, {-3.3f, 3.3f}};
  for (int bits = 2; bits <= 8; ++bits) {
    for (const auto& r : ranges) {
      const QParams p = params_from_range(r[0], r[1], bits, false);
      EXPECT_EQ(p.qmin, 0);
      EXPECT_EQ(p.qmax, (1 << bits) - 1);
      EXPECT_GE(p.zero, p.qmin);
      EXPECT_LE(p.zero, p.qmax);
      EXPECT_EQ(p.dequantize(p.quantize(0.0f)), 0.0f) << bits << " [" << r[0] << ", " << r[1] << "]";
      // The nudged grid covers [min(lo, 0), max(hi, 0)] to within half a step.
      const float a = std::min(r[0], 0.0f), b = std::max(r[1], 0.0f);
      EXPECT_NEAR(p.scale, (b - a) / float(p.qmax), 1e-6f * (b - a));
      EXPECT_LE(p.lo, a + 0.5f * p.scale * 1.0001f);
      EXPECT_GE(p.hi, b - 0.5f * p.scale * 1.0001f);
      // Round trip inside the range: error at most half a step.
      for (int k = 0; k <= 50; ++k) {
        const float x = a + (b - a) * float(k) / 50;
        EXPECT_LE(std::fabs(p.dequantize(p.quantize(x)) - x), 0.5f * p.scale * 1.0001f) << x;
      }
    }
  }
}

TEST(ObserverParams, ZeroRangeAndBadInput) {
  const QParams s = params_from_range(0, 0, 8, true), a = params_from_range(0, 0, 8, false);
  EXPECT_EQ(s.scale, 1.0f);
  EXPECT_EQ(a.scale, 1.0f);
  EXPECT_EQ(a.zero, 0);
  EXPECT_THROW(params_from_range(-1, 1, 1, true), Error);
  EXPECT_THROW(params_from_range(-1, 1, 9, false), Error);
  EXPECT_THROW(params_from_range(1, -1, 8, true), Error);
  EXPECT_THROW(params_from_range(std::nanf(""), 1, 8, true), Error);
  EXPECT_THROW(params_from_range(0, std::numeric_limits<float>::infinity(), 8, false), Error);
}

TEST(ObserverParams, PerRowMatchesRowMinMax) {
  const float w[3 * 4] = {1, -2, 0.5f, 3,  //
                          -0.25f, 0.125f, 0, 0.1f,  //
                          5, 6, 7, 8};
  for (bool sym : {true, false}) {
    const auto p = per_row_params(w, 3, 4, 8, sym);
    ASSERT_EQ(p.size(), 3u);
    const float lo[3] = {-2, -0.25f, 5}, hi[3] = {3, 0.125f, 8};
    for (int r = 0; r < 3; ++r) {
      const QParams e = params_from_range(lo[r], hi[r], 8, sym);
      EXPECT_EQ(p[size_t(r)].scale, e.scale);
      EXPECT_EQ(p[size_t(r)].zero, e.zero);
    }
  }
  EXPECT_FLOAT_EQ(per_row_params(w, 3, 4, 8, true)[0].scale, 3.0f / 127);
  float bad[4] = {1, 2, std::nanf(""), 3};
  EXPECT_NE(error_of([&] { per_row_params(bad, 2, 2, 8, true); }).find("row 1"), std::string::npos);
}

// ---- MinMax and EMA ----

TEST(Observer, MinMaxIsExactOverBatches) {
  const std::vector<float> b1 = {1, -2, 3}, b2 = {0.5f, -4}, b3 = {2.5f};
  for (bool sym : {true, false}) {
    ObserverSpec s;
    s.symmetric = sym;
    auto ob = make_observer(s);
    ob->observe(b1.data(), 3);
    ob->observe(b2.data(), 2);
    ob->observe(nullptr, 0);  // an empty batch changes nothing
    ob->observe(b3.data(), 1);
    const QParams p = ob->params();
    if (sym) {
      EXPECT_FLOAT_EQ(p.scale, 4.0f / 127);
      EXPECT_EQ(p.zero, 0);
    } else {
      EXPECT_FLOAT_EQ(p.scale, 7.0f / 255);
      EXPECT_EQ(p.zero, 146);  // round(4 / (7 / 255)) = round(145.71)
    }
  }
}

TEST(Observer, EmaFollowsTheRecurrence) {
  // decay 0.8: lo -1 -> 0.8*-1 + 0.2*-3 = -1.4 -> 0.8*-1.4 + 0.2*0.5 = -1.02;
  //            hi  2 -> 0.8*2 + 0.2*1 = 1.8   -> 0.8*1.8 + 0.2*4 = 2.24.
  const std::vector<float> b1 = {-1, 2, 0}, b2 = {1, -3}, b3 = {0.5f, 4, 1};
  for (bool sym : {true, false}) {
    ObserverSpec s = parse_observer("ema:0.8");
    s.symmetric = sym;
    auto ob = make_observer(s);
    ob->observe(b1.data(), 3);
    ob->observe(b2.data(), 2);
    ob->observe(b3.data(), 0);  // empty: not a batch
    ob->observe(b3.data(), 3);
    const QParams e = params_from_range(-1.02f, 2.24f, 8, sym), p = ob->params();
    EXPECT_NEAR(p.scale, e.scale, 1e-6f * e.scale);
    EXPECT_EQ(p.zero, e.zero);
  }
  // One batch: EMA is that batch's min/max.
  auto ob = make_observer(parse_observer("ema"));
  ob->observe(b2.data(), 2);
  EXPECT_FLOAT_EQ(ob->params().scale, 3.0f / 127);
}

// ---- errors ----

TEST(Observer, RejectsNonFiniteDataAndEarlyParams) {
  const std::vector<float> good = gaussian(1000, 3);
  std::vector<float> bad = gaussian(100, 4);
  for (const char* name : {"minmax", "ema", "percentile", "mse", "kl"}) {
    ObserverSpec spec = parse_observer(name);
    spec.bins = 256;  // keeps the test fast
    auto ob = make_observer(spec);
    EXPECT_NE(error_of([&] { ob->params(); }).find("before any values"), std::string::npos) << name;
    ob->observe(good.data(), int64_t(good.size()));
    const QParams before = ob->params();
    bad[37] = std::nanf("");
    EXPECT_NE(error_of([&] { ob->observe(bad.data(), 100); }).find("non-finite value nan at index 37"),
              std::string::npos)
        << name;
    bad[37] = 0;
    bad[50] = -std::numeric_limits<float>::infinity();
    EXPECT_THROW(ob->observe(bad.data(), 100), Error) << name;
    bad[50] = 0;
    // The rejected batches left the observer as it was.
    EXPECT_EQ(ob->params().scale, before.scale) << name;
  }
  ObserverSpec s;
  s.bits = 9;
  EXPECT_NE(error_of([&] { make_observer(s); }).find("[2, 8]"), std::string::npos);
  s.bits = 1;
  EXPECT_THROW(make_observer(s), Error);
  s = parse_observer("kl");
  s.symmetric = false;
  EXPECT_NE(error_of([&] { make_observer(s); }).find("symmetric only"), std::string::npos);
  s = parse_observer("mse");
  s.bins = 1001;
  EXPECT_THROW(make_observer(s), Error);
  s = parse_observer("kl");
  s.bins = 64;  // < 128 levels for 8 bits
  EXPECT_THROW(make_observer(s), Error);
}

TEST(Observer, ZerosOnlyThenData) {
  const std::vector<float> zeros(500, 0.0f), x = gaussian(1000, 5);
  for (const char* name : {"minmax", "ema", "percentile", "mse", "kl"}) {
    ObserverSpec spec = parse_observer(name);
    spec.bins = 256;
    auto ob = make_observer(spec);
    ob->observe(zeros.data(), 500);
    EXPECT_EQ(ob->params().scale, 1.0f) << name;
    ob->observe(x.data(), 1000);
    EXPECT_GT(ob->params().hi, std::string(name) == "ema" ? 0.1f : 1.0f) << name;  // ema: 0.1 * the batch max
  }
  Histogram h(64, true);
  h.add(zeros.data(), 500);
  h.add(x.data(), 1000);
  EXPECT_EQ(h.total(), 1500);
  EXPECT_GE(h.count(0), 500);  // the early zeros are in the bin holding 0
}

// ---- parse_observer ----

TEST(Observer, ParseNamesAndErrors) {
  EXPECT_EQ(parse_observer("minmax").kind, ObserverKind::MinMax);
  EXPECT_EQ(parse_observer("MSE").kind, ObserverKind::Mse);
  EXPECT_EQ(parse_observer("kl").kind, ObserverKind::Kl);
  const ObserverSpec e = parse_observer("ema:0.95");
  EXPECT_EQ(e.kind, ObserverKind::Ema);
  EXPECT_EQ(e.ema_decay, 0.95);
  EXPECT_EQ(parse_observer("ema").ema_decay, 0.9);
  const ObserverSpec p = parse_observer("percentile:99.9");
  EXPECT_EQ(p.kind, ObserverKind::Percentile);
  EXPECT_EQ(p.percentile, 99.9);
  EXPECT_EQ(parse_observer("percentile").percentile, 99.99);
  for (const char* n : {"minmax", "ema:0.9", "ema:0.95", "percentile:99.99", "percentile:99.9", "mse", "kl"})
    EXPECT_EQ(observer_name(parse_observer(n)), n);
  EXPECT_EQ(observer_name(parse_observer("ema")), "ema:0.9");

  const std::string unknown = error_of([] { parse_observer("histogram"); });
  for (const char* n : {"'histogram'", "minmax", "ema", "percentile", "mse", "kl"})
    EXPECT_NE(unknown.find(n), std::string::npos) << unknown;
  for (const char* bad : {"", "ema:", "ema:abc", "ema:1", "ema:-0.1", "percentile:0", "percentile:101",
                          "percentile:99x", "mse:3", "kl:128", "minmax:1"})
    EXPECT_THROW(parse_observer(bad), Error) << bad;
}

// ---- histogram ----

TEST(ObserverHistogram, WideningKeepsCountsAndPercentile) {
  // Four batches, each wider than the last: the range doubles several times.
  std::vector<float> all;
  Histogram h(2048, true);
  const float sigma[4] = {0.5f, 2, 9, 40};
  for (int b = 0; b < 4; ++b) {
    const std::vector<float> x = gaussian(20000, 10 + uint32_t(b), sigma[b]);
    h.add(x.data(), int64_t(x.size()));
    all.insert(all.end(), x.begin(), x.end());
  }
  int64_t sum = 0;
  for (int j = 0; j < h.bins(); ++j) sum += h.count(j);
  EXPECT_EQ(h.total(), 80000);
  EXPECT_EQ(sum, 80000);
  EXPECT_GE(h.hi(), h.max_abs());
  EXPECT_LT(h.hi(), 2 * h.max_abs());
  // Merging pairs is exact: the counts equal a direct binning over the final
  // range, but for the first batch's max (on an old upper edge, kept in the last bin).
  EXPECT_LE(binning_difference(h, all), 2);

  Histogram one(2048, true);
  one.add(all.data(), int64_t(all.size()));
  EXPECT_EQ(one.hi(), double(one.max_abs()));
  for (double pct : {50.0, 99.0, 99.9}) {
    const double t_multi = h.quantile(pct / 100), t_one = one.quantile(pct / 100);
    EXPECT_NEAR(t_multi, t_one, h.width()) << pct;
    QParams pm = percentile_params(h, pct, 8), po = percentile_params(one, pct, 8);
    EXPECT_NEAR(pm.hi, po.hi, h.width() * 1.001) << pct;
  }
}

TEST(ObserverHistogram, AsymmetricWidensTowardsTheOverflow) {
  Histogram h(256, false);
  std::vector<float> all;
  const float ranges[][2] = {{0, 1}, {-3, 0.5f}, {-1, 7}, {-0.5f, 0.5f}};
  for (int b = 0; b < 4; ++b) {
    const std::vector<float> x = uniform(5000, 20 + uint32_t(b), ranges[b][0], ranges[b][1]);
    h.add(x.data(), 5000);
    all.insert(all.end(), x.begin(), x.end());
  }
  EXPECT_EQ(h.total(), 20000);
  EXPECT_LE(h.lo(), h.min());
  EXPECT_GE(h.hi(), h.max());
  EXPECT_LE(h.lo(), 0.0);
  EXPECT_LT(h.hi() - h.lo(), 4 * (h.max() - h.min()));
  EXPECT_LE(binning_difference(h, all), 2);
}

// ---- percentile ----

TEST(ObserverPercentile, UniformWithinABinOfAnalytic) {
  // |x| of U(-1, 1) is U(0, 1): the p-th percentile is p / 100.
  const int64_t n = 200000;
  const std::vector<float> x = uniform(n, 30, -1, 1);
  std::vector<float> ax(x.size());
  for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
  std::sort(ax.begin(), ax.end());
  for (double pct : {90.0, 99.0, 99.9}) {
    ObserverSpec s = parse_observer("percentile");
    s.percentile = pct;
    auto ob = make_observer(s);
    feed(*ob, x, 5);
    const QParams p = ob->params();
    const double bin = 1.0 / 2048 * 1.01, f = pct / 100;
    const double empirical = ax[size_t(f * double(n)) - 1];
    EXPECT_NEAR(p.hi, empirical, bin) << pct;  // the samples' own quantile
    EXPECT_NEAR(p.hi, f, bin + 4 * std::sqrt(f * (1 - f) / double(n))) << pct;  // + sampling error
  }
  // Two-sided on U(-1, 3): 98% kept, 1% cut from each tail -> [-0.96, 2.96].
  const std::vector<float> y = uniform(n, 31, -1, 3);
  const QParams q = observe_all("percentile:98", y, 4, false);
  const double tol = 4.0 / 256 + 4 * std::sqrt(0.01 * 0.99 / double(n)) * 4 + q.scale;
  EXPECT_NEAR(q.lo, -0.96, tol);
  EXPECT_NEAR(q.hi, 2.96, tol);
}

// ---- MSE ----

TEST(ObserverMse, HistogramErrorMatchesSamples) {
  const std::vector<float> x = gaussian(50000, 40);
  for (bool sym : {true, false}) {
    Histogram h(2048, sym);
    h.add(x.data(), int64_t(x.size()));
    for (int bits : {4, 8})
      for (float t : {1.0f, 2.5f, 4.0f}) {
        const QParams p = params_from_range(-t, sym ? t : 0.7f * t, bits, sym);
        const double emp = fake_quant_mse(x.data(), int64_t(x.size()), p);
        const double pred = histogram_sq_error(h, p) / double(x.size());
        EXPECT_NEAR(pred / emp, 1.0, 0.01) << sym << " " << bits << " " << t;
      }
  }
}

TEST(ObserverMse, MatchesBruteForceSearch) {
  // A Gaussian at 4 bits and a heavy-tailed Student-t (nu = 3) at 8 bits: the
  // histogram's threshold against a dense search of the samples' own MSE.
  std::mt19937 rng(41);
  std::student_t_distribution<float> td(3.0f);
  std::vector<float> heavy(5000);
  for (float& v : heavy) v = td(rng);
  const struct {
    std::vector<float> x;
    int bits;
  } cases[] = {{gaussian(5000, 42), 4}, {heavy, 8}};
  for (const auto& c : cases) {
    Histogram h(2048, true);
    h.add(c.x.data(), int64_t(c.x.size()));
    const QParams p = mse_params(h, c.bits);
    double best = 0;
    const double t_brute = brute_force_mse_threshold(c.x, c.bits, h.width(), &best);
    const double e_hist = fake_quant_mse(c.x.data(), int64_t(c.x.size()), p);
    std::printf("[ mse      ] %d bits: T = %.4f (histogram), %.4f (brute force), %.2f bins apart; MSE ratio %.5f\n",
                c.bits, p.hi, t_brute, (p.hi - t_brute) / h.width(), e_hist / best);
    EXPECT_NEAR(p.hi, t_brute, 2.5 * h.width());
    EXPECT_LE(e_hist, best * 1.002);
    EXPECT_LT(p.hi, (c.bits == 4 ? 0.8f : 0.99f) * h.max_abs());  // an interior optimum, not just the max
  }
}

TEST(ObserverMse, UniformKeepsNearlyTheFullRange) {
  // U(-1, 1) at 8 bits: the optimum clips only ~0.3% (rounding s^2/12 with
  // s = T/127 against clipping (1 - T)^3 / 3).
  const std::vector<float> x = uniform(100000, 50, -1, 1);
  const QParams p = observe_all("mse", x, 4);
  EXPECT_GT(p.hi, 0.99f);
  EXPECT_LE(p.hi, 1.0f);
  const QParams a = observe_all("mse", x, 4, false);
  EXPECT_LT(a.lo, -0.98f);
  EXPECT_GT(a.hi, 0.98f);
}

// ---- Gaussian with outliers: MSE, KL, percentile against MinMax ----

TEST(ObserverClipping, GaussianWithOutliers) {
  // 2^20 samples of N(0, 1) and 2 outliers at +-50 sigma.
  std::vector<float> x = gaussian(1 << 20, 60);
  x[1000] = 50.0f;
  x[600000] = -50.0f;
  std::vector<float> inliers;
  for (float v : x)
    if (std::fabs(v) < 40) inliers.push_back(v);
  const int64_t n = int64_t(x.size()), ni = int64_t(inliers.size());

  const QParams mm = observe_all("minmax", x, 8), kl = observe_all("kl", x, 8), mse = observe_all("mse", x, 8),
                pc = observe_all("percentile", x, 8);
  const double in_mm = fake_quant_mse(inliers.data(), ni, mm), in_kl = fake_quant_mse(inliers.data(), ni, kl);
  const double all_mm = fake_quant_mse(x.data(), n, mm), all_kl = fake_quant_mse(x.data(), n, kl),
               all_mse = fake_quant_mse(x.data(), n, mse), all_pc = fake_quant_mse(x.data(), n, pc);
  std::printf("[ clipping ] T/sigma: minmax %.2f, kl %.2f, mse %.2f, percentile:99.99 %.2f\n", mm.hi, kl.hi, mse.hi,
              pc.hi);
  std::printf("[ clipping ] inlier MSE: minmax %.3g, kl %.3g (%.0fx lower); all-sample MSE: minmax %.3g, kl %.3g, "
              "mse %.3g, percentile %.3g\n",
              in_mm, in_kl, in_mm / in_kl, all_mm, all_kl, all_mse, all_pc);
  EXPECT_FLOAT_EQ(mm.hi, 50.0f);
  // KL clips at a few sigma and quantizes the inliers far better.
  EXPECT_GT(kl.hi, 2.5f);
  EXPECT_LT(kl.hi, 8.0f);
  EXPECT_LT(in_kl, in_mm / 50);
  // MSE counts the outliers' clipping error too, yet still clips far below
  // them: with a share r of outliers at M, T^2 / (12 qmax^2) + r (M - T)^2 is
  // least at T = M r / (r + 1 / (12 qmax^2)), 13.4 sigma here...
  const double r = 2.0 / double(n), predicted = 50 * r / (r + 1.0 / (12.0 * 127 * 127));
  EXPECT_NEAR(mse.hi, predicted, 0.1 * predicted);
  EXPECT_LT(mse.hi, 0.35f * 50);
  // ...and has the least MSE over all samples of the four.
  EXPECT_LT(all_mse, all_mm);
  EXPECT_LE(all_mse, all_kl * 1.001);
  EXPECT_LE(all_mse, all_pc * 1.001);
  EXPECT_NEAR(pc.hi, 3.9, 0.3);  // 99.99% of |N(0, 1)| lies below 3.89
}

TEST(ObserverKl, PureGaussianThresholdAndAsymmetricHistogramRejected) {
  const std::vector<float> x = gaussian(100000, 70);
  const QParams p = observe_all("kl", x, 4);
  Histogram h(2048, true);
  h.add(x.data(), int64_t(x.size()));
  std::printf("[ kl       ] N(0,1) without outliers: T = %.3f sigma (max |x| %.3f)\n", p.hi, h.max_abs());
  EXPECT_GT(p.hi, 2.5f);
  EXPECT_LE(p.hi, h.max_abs());
  Histogram signed_h(2048, false);
  signed_h.add(x.data(), int64_t(x.size()));
  EXPECT_THROW(kl_params(signed_h, 8), Error);
}
