// Norms, RoPE and causal attention of train/ops.h. Values come from the
// inference kernels (kernels/ops.h); the backward passes are written here.
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
bool wants(Var v) { return v && v->requires_grad; }

// 1 / sqrt(mean(x²) + eps) of a row, as kernels::rmsnorm computes it.
float inv_rms(const float* x, int64_t d, float eps) {
  double ss = 0;
  for (int64_t j = 0; j < d; ++j) ss += double(x[j]) * x[j];
  return 1.0f / std::sqrt(float(ss / d) + eps);
}
}  // namespace

Var rmsnorm(Var x, Var w, float eps) {
  const int64_t n = x->rows(), d = x->cols();
  SHRINK_CHECK(w->value.numel() == d, "rmsnorm: weight of ", w->value.numel(), " for rows of ", d);
  Var y = x->graph->make(Tensor::alloc(DType::F32, x->value.shape), {x, w});
  kernels::rmsnorm(x->v(), w->v(), y->v(), n, d, eps);
  if (!y->requires_grad) return y;
  y->backward = [=] {
    // y = x·r·w with r = (mean x² + eps)^-1/2:  dx = r·(w⊙dy) − r³/d · x · Σ(w⊙dy⊙x).
    // Rows are independent for dx (threads split rows); dw sums over rows, so
    // threads split its columns (blocks of 16) and add rows in order: the
    // result is the same at any thread count.
    std::vector<float> r(n);
    const bool par = n * d > (1 << 15);
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < n; ++i) r[i] = inv_rms(x->v() + i * d, d, eps);
    if (wants(w)) {
      const int64_t blocks = (d + 15) / 16;
#pragma omp parallel for schedule(static) if (par)
      for (int64_t bk = 0; bk < blocks; ++bk)
        for (int64_t i = 0; i < n; ++i) {
          const float *xi = x->v() + i * d, *dy = y->g() + i * d;
          for (int64_t j = bk * 16; j < std::min(d, bk * 16 + 16); ++j) w->g()[j] += dy[j] * xi[j] * r[i];
        }
    }
    if (!wants(x)) return;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < n; ++i) {
      const float *xi = x->v() + i * d, *dy = y->g() + i * d;
      const float ri = r[i];
      double dot = 0;
      for (int64_t j = 0; j < d; ++j) dot += double(w->v()[j]) * dy[j] * xi[j];
      const float c = float(dot) * ri * ri * ri / float(d);
      float* dx = x->g() + i * d;
      for (int64_t j = 0; j < d; ++j) dx[j] += ri * w->v()[j] * dy[j] - c * xi[j];
    }
  };
  return y;
}

Var layernorm(Var x, Var w, Var b, float eps) {
  const int64_t n = x->rows(), d = x->cols();
  SHRINK_CHECK(w->value.numel() == d && (!b || b->value.numel() == d), "layernorm: weight/bias for rows of ", d);
  Var y = x->graph->make(Tensor::alloc(DType::F32, x->value.shape), {x, w, b});
  kernels::layernorm(x->v(), w->v(), b ? b->v() : nullptr, y->v(), n, d, eps);
  if (!y->requires_grad) return y;
  y->backward = [=] {
    // x̂ = (x − μ)·r;  with g = w⊙dy:  dx = r·(g − mean(g) − x̂·mean(g⊙x̂)).
    std::vector<float> xhat(d);
    for (int64_t i = 0; i < n; ++i) {
      const float *xi = x->v() + i * d, *dy = y->g() + i * d;
      double mean = 0, var = 0;
      for (int64_t j = 0; j < d; ++j) mean += xi[j];
      mean /= d;
      for (int64_t j = 0; j < d; ++j) var += (xi[j] - mean) * (xi[j] - mean);
      const float r = 1.0f / std::sqrt(float(var / d) + eps);
      double mg = 0, mgx = 0;
      for (int64_t j = 0; j < d; ++j) {
        xhat[j] = float(xi[j] - mean) * r;
        const float gj = w->v()[j] * dy[j];
        mg += gj;
        mgx += double(gj) * xhat[j];
      }
      mg /= d;
      mgx /= d;
      for (int64_t j = 0; j < d; ++j) {
        if (wants(w)) w->g()[j] += dy[j] * xhat[j];
        if (wants(b)) b->g()[j] += dy[j];
        if (wants(x)) x->g()[i * d + j] += r * (w->v()[j] * dy[j] - float(mg) - xhat[j] * float(mgx));
      }
    }
  };
  return y;
}

Var rope(Var x, int64_t n_heads, int64_t head_dim, const std::vector<int32_t>& positions, float theta, float scale,
         bool interleaved) {
  const int64_t n = x->rows();
  SHRINK_CHECK(x->cols() == n_heads * head_dim && head_dim % 2 == 0, "rope: rows of ", x->cols(), " are not ",
               n_heads, " heads of an even ", head_dim);
  SHRINK_CHECK(int64_t(positions.size()) == n, "rope: ", positions.size(), " positions for ", n, " tokens");
  Var y = x->graph->make(x->value.clone(), {x});
  kernels::rope(y->v(), n, n_heads, head_dim, positions.data(), theta, scale, interleaved);
  if (!y->requires_grad) return y;
  y->backward = [=] {
    std::vector<int32_t> back(positions.size());
    for (size_t t = 0; t < back.size(); ++t) back[t] = -positions[t];
    std::vector<float> dx(y->g(), y->g() + y->value.numel());
    kernels::rope(dx.data(), n, n_heads, head_dim, back.data(), theta, scale, interleaved);
    const int64_t m = int64_t(dx.size());
#pragma omp parallel for if (m > (1 << 15))
    for (int64_t i = 0; i < m; ++i) x->g()[i] += dx[i];
  };
  return y;
}

namespace {

struct AttnShape {
  int64_t n_heads, n_kv_heads, head_dim, seq_len;
  int64_t q_cols() const { return n_heads * head_dim; }
  int64_t kv_cols() const { return n_kv_heads * head_dim; }
};

// Gradients of one (sequence, query head) pair: recomputes the softmax rows,
// then dV += Pᵀ·dO, dS = P ⊙ (dP − rowsum(P ⊙ dP)) with dP = dO·Vᵀ,
// dQ += scale·dS·K, dK += scale·dSᵀ·Q. q, k, v, and their grads point at the
// head's first column of the sequence's first row.
void attention_head_backward(const AttnShape& s, const float* q, const float* k, const float* v, const float* dout,
                             float* dq, float* dk, float* dv, std::vector<float>& p, std::vector<float>& dp) {
  const int64_t hd = s.head_dim, qs = s.q_cols(), ks = s.kv_cols();
  const float sc = 1.0f / std::sqrt(float(hd));
  for (int64_t t = 0; t < s.seq_len; ++t) {
    const float *qt = q + t * qs, *dot = dout + t * qs;
    const int64_t len = t + 1;
    for (int64_t j = 0; j < len; ++j) {
      float acc = 0;
      for (int64_t e = 0; e < hd; ++e) acc += qt[e] * k[j * ks + e];
      p[j] = acc * sc;
    }
    kernels::softmax_fast(p.data(), len);
    double pdp = 0;
    for (int64_t j = 0; j < len; ++j) {
      float acc = 0;
      for (int64_t e = 0; e < hd; ++e) acc += dot[e] * v[j * ks + e];
      dp[j] = acc;
      pdp += double(p[j]) * acc;
    }
    for (int64_t j = 0; j < len; ++j) {
      const float ds = p[j] * (dp[j] - float(pdp)) * sc;
      for (int64_t e = 0; e < hd; ++e) {
        if (dv) dv[j * ks + e] += p[j] * dot[e];
        if (dq) dq[t * qs + e] += ds * k[j * ks + e];
        if (dk) dk[j * ks + e] += ds * qt[e];
      }
    }
  }
}

// The same as five GEMMs per head (sequences of 8 tokens or more, as the
// forward kernel): S = scale·Q·Kᵀ, P = causal softmax(S), dP = dO·Vᵀ,
// dV += Pᵀ·dO, dS = P ⊙ (dP − rowsum(P ⊙ dP))·scale, dQ += dS·K, dK += dSᵀ·Q.
// P and dP are seq_len² scratch; P is zero past each row's prefix, so dS is too.
void attention_head_backward_gemm(const AttnShape& s, const float* q, const float* k, const float* v,
                                  const float* dout, float* dq, float* dk, float* dv, std::vector<float>& P,
                                  std::vector<float>& dP) {
  const int64_t T = s.seq_len, hd = s.head_dim, qs = s.q_cols(), ks = s.kv_cols();
  const float sc = 1.0f / std::sqrt(float(hd));
  P.resize(T * T);
  dP.resize(T * T);
  auto gemm = [](char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    const dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    SHRINK_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ")");
  };
  gemm('N', 'T', T, T, hd, sc, q, qs, k, ks, 0.0f, P.data(), T);
  for (int64_t t = 0; t < T; ++t) {
    kernels::softmax_fast(P.data() + t * T, t + 1);
    std::fill(P.data() + t * T + t + 1, P.data() + (t + 1) * T, 0.0f);
  }
  gemm('N', 'T', T, T, hd, 1.0f, dout, qs, v, ks, 0.0f, dP.data(), T);
  if (dv) gemm('T', 'N', T, hd, T, 1.0f, P.data(), T, dout, qs, 1.0f, dv, ks);
  for (int64_t t = 0; t < T; ++t) {
    float *p = P.data() + t * T, *d = dP.data() + t * T;
    double pdp = 0;
    for (int64_t j = 0; j <= t; ++j) pdp += double(p[j]) * d[j];
    for (int64_t j = 0; j < T; ++j) d[j] = j <= t ? p[j] * (d[j] - float(pdp)) * sc : 0.0f;
  }
  if (dq) gemm('N', 'N', T, hd, T, 1.0f, dP.data(), T, k, ks, 1.0f, dq, qs);
  if (dk) gemm('T', 'N', T, hd, T, 1.0f, dP.data(), T, q, qs, 1.0f, dk, ks);
}

}  // namespace

Var attention(Var q, Var k, Var v, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t seq_len) {
  const AttnShape s{n_heads, n_kv_heads, head_dim, seq_len};
  const int64_t n = q->rows();
  SHRINK_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention: ", n_heads, " heads do not group over ",
               n_kv_heads, " KV heads");
  SHRINK_CHECK(q->cols() == s.q_cols() && k->cols() == s.kv_cols() && v->cols() == s.kv_cols() && k->rows() == n &&
                   v->rows() == n,
               "attention: q/k/v shapes do not match ", n_heads, "/", n_kv_heads, " heads of ", head_dim);
  SHRINK_CHECK(seq_len > 0 && n % seq_len == 0, "attention: ", n, " tokens are not whole sequences of ", seq_len);
  const int64_t n_seqs = n / seq_len, qs = s.q_cols(), ks = s.kv_cols();
  Var y = q->graph->make(Tensor::alloc(DType::F32, q->value.shape), {q, k, v});
  for (int64_t b = 0; b < n_seqs; ++b)  // the inference kernel, one sequence at a time from position 0
    kernels::attention(q->v() + b * seq_len * qs, k->v() + b * seq_len * ks, v->v() + b * seq_len * ks,
                       y->v() + b * seq_len * qs, seq_len, 0, n_heads, n_kv_heads, head_dim);
  if (!y->requires_grad) return y;
  y->backward = [=] {
    const int64_t group = n_heads / n_kv_heads;
    // Parallel over (sequence, KV head): each writes only its own dK/dV panel and its heads' dQ.
#pragma omp parallel for schedule(static) if (n_seqs * n_kv_heads > 1 && n * seq_len * qs > (1 << 16))
    for (int64_t bh = 0; bh < n_seqs * n_kv_heads; ++bh) {
      const int64_t b = bh / n_kv_heads, kh = bh % n_kv_heads;
      std::vector<float> p(seq_len), dp(seq_len);
      const int64_t qoff = b * seq_len * qs, koff = b * seq_len * ks + kh * head_dim;
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const int64_t qh = qoff + h * head_dim;
        auto* head_backward = seq_len >= 8 ? attention_head_backward_gemm : attention_head_backward;
        head_backward(s, q->v() + qh, k->v() + koff, v->v() + koff, y->g() + qh, wants(q) ? q->g() + qh : nullptr,
                      wants(k) ? k->g() + koff : nullptr, wants(v) ? v->g() + koff : nullptr, p, dp);
      }
    }
  };
  return y;
}

}  // namespace shrink::train
