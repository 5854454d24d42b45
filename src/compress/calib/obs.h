// The Optimal Brain Surgeon column sweep shared by GPTQ (Frantar et al. 2022,
// Alg. 1) and SparseGPT (Frantar & Alistarh 2023, Alg. 1). Both walk the
// columns of W in order, replace each column by a compressed one (rounded for
// GPTQ, masked for SparseGPT), and push the column's error, scaled by the
// upper Cholesky factor U of H^-1, onto the columns not yet visited: inside a
// lazy block of B columns immediately, beyond it as one GEMM per block. The
// methods differ only in how a column is replaced, so that is a callback.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace shrink::calib {

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U) of the n x n row-major
// H, after adding `damp` x mean(diag H) to the diagonal; the dampening is
// raised x10 until H is positive definite. Returns U as f32 row-major and the
// dampening used in *damp_used. `who` names the method in errors.
std::vector<float> inverse_cholesky_upper(const std::vector<float>& h, int64_t n, float damp, double* damp_used,
                                          const char* who);

struct ObsSweep {
  // wt: the weight column-major (column i is wt + i * rows), updated in place:
  // on return every column holds its replacement.
  float* wt = nullptr;
  int64_t rows = 0, cols = 0;
  const float* u = nullptr;  // cols x cols, inverse_cholesky_upper
  int64_t block = 128;       // lazy block width
  // Called before the columns [i1, i2) of a lazy block are visited (they hold
  // every update from earlier blocks by then). Optional.
  std::function<void(int64_t i1, int64_t i2)> begin_block;
  // Writes column i's replacement into q (rows values); col holds its current values.
  std::function<void(int64_t i, const float* col, float* q)> replace;
};
void obs_sweep(const ObsSweep& s);

// C = alpha op(A) op(B) + beta C, row-major, through oneDNN.
void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc);

// tr((W - Q) H (W - Q)^T) / tr(W H W^T): a layer's output error on the
// calibration inputs relative to its output energy (what GPTQ and SparseGPT minimise).
double relative_output_error(const Tensor& w, const Tensor& q, const std::vector<float>& h);

// ||W - Q||² / ||W||² of two f32 tensors of the same size.
double relative_weight_error(const Tensor& w, const Tensor& q);

// Row-major {rows, cols} <-> column-major copies.
std::vector<float> to_column_major(const float* w, int64_t rows, int64_t cols);
void from_column_major(const float* wt, int64_t rows, int64_t cols, float* w);

}  // namespace shrink::calib
