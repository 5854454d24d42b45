// Statistics of a Linear's inputs gathered over calibration data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "model/linear.h"

namespace shrink::calib {

// H = (2 / N) * sum over the N observed rows x of x^T x: the Hessian of the
// layer's squared output error that GPTQ and SparseGPT minimise (Frantar et
// al. 2022, eq. 1). Accumulated in f32 by oneDNN (as GPTQ's reference code
// does on the GPU), `cols` x `cols`, symmetric.
class Hessian {
 public:
  explicit Hessian(int64_t cols);
  void add(const float* x, int64_t n);  // n rows of cols values
  int64_t cols() const { return cols_; }
  int64_t count() const { return count_; }
  // The normalised H (2/N * sum), row-major.
  std::vector<float> matrix() const;

 private:
  int64_t cols_, count_ = 0;
  std::vector<float> sum_;  // sum of x^T x
};

// The Hessians of one group of Linears (calib::block_groups), for methods that
// observe a group and then rewrite it (GPTQ, SparseGPT). Linears fed the very
// same input (q/k/v, gate/up) share one Hessian: the first of them owns it and
// adds every sequence; the others alias it.
class GroupHessians {
 public:
  void observe(const Linear& l, const float* x, int64_t n);
  const Hessian& of(const Linear& l) const;  // throws if l was never observed
  void clear();

 private:
  const Linear* root(const Linear* l) const;
  std::map<const Linear*, std::unique_ptr<Hessian>> hessians_;
  std::map<const Linear*, const Linear*> alias_;
  const Linear* last_ = nullptr;
  const float* last_x_ = nullptr;
  int64_t last_n_ = 0;
};

// Per-column statistics: mean of x^2 (llama.cpp's importance matrix; Wanda's
// ||X_j||^2 / N), mean |x| (AWQ's activation scale) and max |x| (SmoothQuant).
struct ColumnStats {
  explicit ColumnStats(int64_t cols = 0) : sum_sq(size_t(cols)), sum_abs(size_t(cols)), max_abs(size_t(cols)) {}
  void add(const float* x, int64_t n);
  std::vector<float> mean_sq() const;
  std::vector<float> mean_abs() const;
  std::vector<double> sum_sq, sum_abs;
  std::vector<float> max_abs;
  int64_t count = 0;
};

// tr((W - Q) H (W - Q)^T) / tr(W H W^T): a layer's output error on the
// calibration inputs relative to its output energy (what GPTQ and SVD-LLM
// minimise). w, q: f32 {rows, cols}; h: cols x cols.
double relative_output_error(const float* w, const float* q, int64_t rows, int64_t cols, const std::vector<float>& h);

// ||W - Q||_F^2 / ||W||_F^2 of two f32 arrays of n values.
double relative_weight_error(const float* w, const float* q, int64_t n);

}  // namespace shrink::calib
