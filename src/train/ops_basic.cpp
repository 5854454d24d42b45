// Products, element-wise ops and the embedding gather of train/ops.h.
#include <dnnl.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/fast_exp.h"
#include "kernels/ops.h"
#include "train/ops.h"

namespace shrink::train {

namespace {

Tensor like(const Tensor& t) { return Tensor::alloc(DType::F32, t.shape); }

bool wants(Var v) { return v && v->requires_grad; }

void check_same_shape(Var a, Var b, const char* op) {
  SHRINK_CHECK(a->value.shape == b->value.shape, op, ": shapes ", shape_str(a->value.shape), " and ",
               shape_str(b->value.shape), " differ");
}

// C[M x N] = alpha · op(A) · op(B) + beta · C, row-major (oneDNN, as kernels/gemv does).
void sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc) {
  const dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
}

// Element-wise loops split over threads when large: every element is written
// by one thread, so results do not depend on the thread count.
constexpr int64_t kParallelElems = 1 << 15;

// An element-wise unary op: value f(x), gradient dy · f'(x).
template <typename F, typename DF>
Var unary(Var x, F f, DF df) {
  const int64_t n = x->value.numel();
  Var y = x->graph->make(like(x->value), {x});
#pragma omp parallel for if (n > kParallelElems)
  for (int64_t i = 0; i < n; ++i) y->v()[i] = f(x->v()[i]);
  if (y->requires_grad)
    y->backward = [=] {
#pragma omp parallel for if (n > kParallelElems)
      for (int64_t i = 0; i < n; ++i) x->g()[i] += y->g()[i] * df(x->v()[i]);
    };
  return y;
}

float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// acc[j] += Σ_t rows[t·d + j]: threads split the columns (blocks of 16) and each
// sums its columns over all rows in row order, so the sum is thread-count independent.
void sum_rows_into(const float* rows, int64_t n, int64_t d, float* acc) {
  const int64_t blocks = (d + 15) / 16;
#pragma omp parallel for schedule(static) if (n * d > kParallelElems)
  for (int64_t bk = 0; bk < blocks; ++bk) {
    const int64_t j0 = bk * 16, j1 = std::min(d, j0 + 16);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = j0; j < j1; ++j) acc[j] += rows[t * d + j];
  }
}

}  // namespace

Var linear(Var x, Var w, Var b) {
  const int64_t n = x->rows(), in = x->cols();
  SHRINK_CHECK(w->value.ndim() == 2 && w->value.dim(1) == in, "linear: weight ", shape_str(w->value.shape),
               " does not take inputs of ", in);
  const int64_t out = w->value.dim(0);
  SHRINK_CHECK(!b || b->value.numel() == out, "linear: bias of ", b ? b->value.numel() : 0, " for ", out, " outputs");
  std::vector<int64_t> shape = x->value.shape;
  shape.back() = out;
  Var y = x->graph->make(Tensor::alloc(DType::F32, shape), {x, w, b});
  sgemm('N', 'T', n, out, in, x->v(), in, w->v(), in, 0.0f, y->v(), out);
  if (b) kernels::add_bias(y->v(), b->v(), n, out);
  if (!y->requires_grad) return y;
  y->backward = [=] {
    if (wants(x)) sgemm('N', 'N', n, in, out, y->g(), out, w->v(), in, 1.0f, x->g(), in);   // dX += dY·W
    if (wants(w)) sgemm('T', 'N', out, in, n, y->g(), out, x->v(), in, 1.0f, w->g(), in);   // dW += dYᵀ·X
    if (wants(b)) sum_rows_into(y->g(), n, out, b->g());
  };
  return y;
}

Var add(Var a, Var b) {
  check_same_shape(a, b, "add");
  const int64_t n = a->value.numel();
  Var y = a->graph->make(like(a->value), {a, b});
#pragma omp parallel for if (n > kParallelElems)
  for (int64_t i = 0; i < n; ++i) y->v()[i] = a->v()[i] + b->v()[i];
  if (y->requires_grad)
    y->backward = [=] {
      for (Var in : {a, b})
        if (wants(in)) {
          float *dst = in->g(), *src = y->g();
#pragma omp parallel for if (n > kParallelElems)
          for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
        }
    };
  return y;
}

Var mul(Var a, Var b) {
  check_same_shape(a, b, "mul");
  const int64_t n = a->value.numel();
  Var y = a->graph->make(like(a->value), {a, b});
#pragma omp parallel for if (n > kParallelElems)
  for (int64_t i = 0; i < n; ++i) y->v()[i] = a->v()[i] * b->v()[i];
  if (y->requires_grad)
    y->backward = [=] {
      if (wants(a))
#pragma omp parallel for if (n > kParallelElems)
        for (int64_t i = 0; i < n; ++i) a->g()[i] += y->g()[i] * b->v()[i];
      if (wants(b))
#pragma omp parallel for if (n > kParallelElems)
        for (int64_t i = 0; i < n; ++i) b->g()[i] += y->g()[i] * a->v()[i];
    };
  return y;
}

Var scale(Var x, float s) {
  return unary(x, [s](float v) { return s * v; }, [s](float) { return s; });
}

Var sum(Var x) {
  const int64_t n = x->value.numel();
  Var y = x->graph->make(Tensor::alloc(DType::F32, {1}), {x});
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += x->v()[i];
  y->v()[0] = float(acc);
  if (y->requires_grad)
    y->backward = [=] {
      for (int64_t i = 0; i < n; ++i) x->g()[i] += y->g()[0];
    };
  return y;
}

Var columns(Var x, int64_t first, int64_t count) {
  SHRINK_CHECK(x->value.ndim() == 2, "columns: the input must be [rows x cols]");
  const int64_t n = x->rows(), cols = x->cols();
  SHRINK_CHECK(first >= 0 && count > 0 && first + count <= cols, "columns ", first, " .. ", first + count - 1,
               " are outside the ", cols, " of the input");
  Var y = x->graph->make(Tensor::alloc(DType::F32, {n, count}), {x});
#pragma omp parallel for if (n * count > kParallelElems)
  for (int64_t t = 0; t < n; ++t) std::memcpy(y->v() + t * count, x->v() + t * cols + first, sizeof(float) * count);
  if (y->requires_grad)
    y->backward = [=] {
#pragma omp parallel for if (n * count > kParallelElems)
      for (int64_t t = 0; t < n; ++t) {
        float* dst = x->g() + t * cols + first;
        const float* src = y->g() + t * count;
        for (int64_t j = 0; j < count; ++j) dst[j] += src[j];
      }
    };
  return y;
}

Var embedding(Var table, const std::vector<int32_t>& tokens) {
  SHRINK_CHECK(table->value.ndim() == 2, "embedding: the table must be {vocab, dim}");
  const int64_t vocab = table->value.dim(0), d = table->value.dim(1), n = int64_t(tokens.size());
  SHRINK_CHECK(n > 0, "embedding of zero tokens");
  Var y = table->graph->make(Tensor::alloc(DType::F32, {n, d}), {table});
  for (int64_t t = 0; t < n; ++t)
    SHRINK_CHECK(tokens[t] >= 0 && tokens[t] < vocab, "token id ", tokens[t], " is outside the vocabulary (", vocab,
                 ")");
#pragma omp parallel for if (n * d > kParallelElems)
  for (int64_t t = 0; t < n; ++t) {
    std::memcpy(y->v() + t * d, table->v() + int64_t(tokens[t]) * d, sizeof(float) * d);
  }
  if (y->requires_grad)
    y->backward = [=] {
      // Scatter-add: a token repeated in the batch adds into one row in token
      // order. Threads split the columns (blocks of 16), never the tokens, so
      // writes are disjoint and the order is the same at any thread count.
      const int64_t blocks = (d + 15) / 16;
#pragma omp parallel for schedule(static) if (n * d > kParallelElems)
      for (int64_t bk = 0; bk < blocks; ++bk) {
        const int64_t j0 = bk * 16, j1 = std::min(d, j0 + 16);
        for (int64_t t = 0; t < n; ++t) {
          float* row = table->g() + int64_t(tokens[t]) * d;
          for (int64_t j = j0; j < j1; ++j) row[j] += y->g()[t * d + j];
        }
      }
    };
  return y;
}

Var silu(Var x) {
  return unary(
      x, [](float v) { return v * sigmoid(v); },
      [](float v) {
        const float s = sigmoid(v);
        return s * (1.0f + v * (1.0f - s));
      });
}

Var gelu(Var x) {
  // 0.5·v·(1 + tanh(u)), u = k·(v + 0.044715·v³): the value comes from the inference kernel.
  const int64_t n = x->value.numel();
  Var y = x->graph->make(x->value.clone(), {x});
  kernels::gelu_tanh(y->v(), n);
  if (y->requires_grad)
    y->backward = [=] {
      // tanh_approx instead of a libm tanhf per element (that was a third of
      // a GPT-2 training step); the forward value above stays the inference kernel's.
      const float k = std::sqrt(2.0f / float(M_PI));
      const float *xv = x->v(), *dy = y->g();
      float* dx = x->g();
#pragma omp parallel for if (n > kParallelElems)
      for (int64_t i = 0; i < n; ++i) {
        const float v = xv[i], u = k * (v + 0.044715f * v * v * v);
        const float th = kernels::tanh_approx(u);
        const float du = k * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] += dy[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du);
      }
    };
  return y;
}

Var swiglu(Var gate, Var up) {
  check_same_shape(gate, up, "swiglu");
  const int64_t n = gate->value.numel();
  Var y = gate->graph->make(gate->value.clone(), {gate, up});
  kernels::silu_mul(y->v(), up->v(), n);  // the inference kernel: silu(gate) · up
  if (y->requires_grad)
    y->backward = [=] {
      // exp_approx (kernels/fast_exp.h) instead of a libm call per element:
      // this loop runs over every FFN activation of the batch.
      float *dg = wants(gate) ? gate->g() : nullptr, *du = wants(up) ? up->g() : nullptr;
      const float *gv = gate->v(), *uv = up->v(), *dy = y->g();
#pragma omp parallel for if (n > kParallelElems)
      for (int64_t i = 0; i < n; ++i) {
        const float s = 1.0f / (1.0f + kernels::exp_approx(-gv[i]));
        if (dg) dg[i] += dy[i] * uv[i] * s * (1.0f + gv[i] * (1.0f - s));
        if (du) du[i] += dy[i] * gv[i] * s;
      }
    };
  return y;
}

}  // namespace shrink::train
