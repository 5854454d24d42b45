#include "kernels/ops.h"

#include "kernels/attention_f32.h"
#include "kernels/fast_exp.h"
#include "kernels/row_slabs.h"

#include <dnnl.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace shrink::kernels {

void rmsnorm(const float* x, const float* w, float* out, int64_t n, int64_t dim, float eps) {
#pragma omp parallel for if (n > 4)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float* oi = out + i * dim;
    double ss = 0;
    // In double, in any order (vector lanes): decode runs this serially between its GEMVs.
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < dim; ++j) ss += double(xi[j]) * xi[j];
    const float inv = 1.0f / std::sqrt(float(ss / dim) + eps);
    for (int64_t j = 0; j < dim; ++j) oi[j] = xi[j] * inv * w[j];
  }
}

void layernorm(const float* x, const float* w, const float* b, float* out, int64_t n, int64_t dim, float eps) {
#pragma omp parallel for if (n > 4)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float* oi = out + i * dim;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < dim; ++j) mean += xi[j];
    mean /= dim;
    for (int64_t j = 0; j < dim; ++j) var += (xi[j] - mean) * (xi[j] - mean);
    const float inv = 1.0f / std::sqrt(float(var / dim) + eps);
    for (int64_t j = 0; j < dim; ++j) oi[j] = float(xi[j] - mean) * inv * w[j] + (b ? b[j] : 0.0f);
  }
}

namespace {
// cos and sin of pos * inv_freq[i] for i < half, pos = position / scale.
// Decode rotates q and then k at the same position, so one thread's last
// table is kept and reused (a layer's 64 sincosf and powf each cost more
// than the rotations).
struct RopeTable {
  float theta = 0, scale = 0;
  int64_t head_dim = 0;
  int32_t position = -1;
  std::vector<float> inv_freq, cs;  // cs: cos, sin pairs
  const float* at(int32_t pos, float th, float sc, int64_t hd) {
    const int64_t half = hd / 2;
    if (th != theta || sc != scale || hd != head_dim) {
      theta = th, scale = sc, head_dim = hd, position = -1;
      inv_freq.resize(static_cast<size_t>(half));
      for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(th, -2.0f * i / hd);
      cs.resize(static_cast<size_t>(2 * half));
    }
    if (pos != position) {
      position = pos;
      const float p = pos / sc;
      for (int64_t i = 0; i < half; ++i) {
        const float a = p * inv_freq[i];
        cs[2 * i] = std::cos(a);
        cs[2 * i + 1] = std::sin(a);
      }
    }
    return cs.data();
  }
};
}  // namespace

void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions, float theta,
          float scale, bool interleaved) {
  const int64_t half = head_dim / 2;
#pragma omp parallel for if (n_tokens > 4)
  for (int64_t t = 0; t < n_tokens; ++t) {
    thread_local RopeTable table;
    const float* cs = table.at(positions[t], theta, scale, head_dim);
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const int64_t i0 = interleaved ? 2 * i : i;
        const int64_t i1 = interleaved ? 2 * i + 1 : i + half;
        const float x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * c - x1 * s;
        v[i1] = x0 * s + x1 * c;
      }
    }
  }
}

void silu_mul(float* gate, const float* up, int64_t n) {
  constexpr int64_t kChunk = 16384;  // 64 KiB of each operand per task; a decode token's 4-16k values stay on one thread
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (chunks > 4)
  for (int64_t c = 0; c < chunks; ++c) silu_mul_fast(gate + c * kChunk, up + c * kChunk, std::min(kChunk, n - c * kChunk));
}

void gelu_tanh(float* x, int64_t n) {
  const float k = std::sqrt(2.0f / float(M_PI));
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void add_bias(float* y, const float* b, int64_t n, int64_t dim) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) y[i * dim + j] += b[j];
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void softmax(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

double log_softmax_at(const float* x, int64_t n, int64_t target) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  return double(x[target]) - mx - std::log(sum);
}

namespace {

// One query row against keys 0..len-1: scores, softmax, weighted sum of
// values (the SIMD primitives of attention_f32.h). The softmax is
// softmax_fast (exp within ~2e-7 relative of std::exp): at depth 1536 the
// libm exp of every score cost llama-500m Q4_K decode 7% (session 12, 5
// alternations at one thread). Prefill keeps kernels::softmax.
void attend_row(const float* qh, const float* k, const float* v, float* oh, float* scores, int64_t len,
                int64_t kv_stride, int64_t head_dim, float scale) {
  const f32attn::Kernels& kern = f32attn::best();
  kern.scores(qh, k, len, kv_stride, head_dim, scale, scores);
  softmax_fast(scores, len);
  kern.accum(scores, v, len, kv_stride, head_dim, oh);
}

}  // namespace

// Prefill: per head, S = Q K^T and O = P V as two GEMMs (the causal mask is
// applied by limiting each row's softmax to its own prefix).
void attention_head_gemm(const float* q, const float* k, const float* v, float* out, float* S, int64_t n_tokens,
                         int64_t pos0, int64_t q_stride, int64_t kv_stride, int64_t head_dim, float scale) {
  const int64_t L = pos0 + n_tokens;
  dnnl_sgemm('N', 'T', n_tokens, L, head_dim, scale, q, q_stride, k, kv_stride, 0.0f, S, L);
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* row = S + t * L;
    const int64_t len = pos0 + t + 1;
    softmax(row, len);
    std::fill(row + len, row + L, 0.0f);
  }
  dnnl_sgemm('N', 'N', n_tokens, head_dim, L, 1.0f, S, L, v, kv_stride, 0.0f, out, q_stride);
}

void attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens, int64_t pos0,
               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t pos_stride, int64_t head_stride) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t q_stride = n_heads * head_dim;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const int64_t L = pos0 + n_tokens;
  // Threads only pay off when there is real work (decode of a tiny model has
  // none): enough arithmetic, or enough of the KV cache to stream that two
  // cores pulling it beat one (the GEMVs' rule, row_slabs.h).
  const int64_t kv_bytes = 2 * L * n_kv_heads * head_dim * int64_t{sizeof(float)};
  const bool parallel = n_tokens * n_heads * L * head_dim > (1 << 16) || kv_bytes >= kParallelMinBytes;
  if (n_tokens >= 8) {
#pragma omp parallel if (parallel)
    {
      std::vector<float> S(static_cast<size_t>(n_tokens * L));
#pragma omp for schedule(static)
      for (int64_t h = 0; h < n_heads; ++h)
        attention_head_gemm(q + h * head_dim, k + (h / group) * head_stride, v + (h / group) * head_stride,
                            out + h * head_dim, S.data(), n_tokens, pos0, q_stride, pos_stride, head_dim, scale);
    }
    return;
  }
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(L));
#pragma omp for collapse(2) schedule(static)
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t h = 0; h < n_heads; ++h)
        attend_row(q + (t * n_heads + h) * head_dim, k + (h / group) * head_stride, v + (h / group) * head_stride,
                   out + (t * n_heads + h) * head_dim, scores.data(), pos0 + t + 1, pos_stride, head_dim, scale);
  }
}

}  // namespace shrink::kernels
