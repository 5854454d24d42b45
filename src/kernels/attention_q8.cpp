#include "kernels/attention_q8.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu.h"
#include "kernels/fast_exp.h"
#include "kernels/ops.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

void quantize_rows_q8(const float* x, int8_t* q, float* d, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    int8_t* qr = q + r * cols;
    float amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(xr[c]));
    const float dr = amax / 127.0f;
    const float id = dr > 0 ? 1.0f / dr : 0.0f;
    d[r] = dr;
    // nearbyint rounds half to even in the default rounding mode (as ggml's
    // x86 quantizers and the SIMD cvtps instructions do).
    for (int64_t c = 0; c < cols; ++c) qr[c] = int8_t(std::clamp(std::nearbyint(xr[c] * id), -127.0f, 127.0f));
  }
}

namespace q8attn {

float quantize_query(const float* q, int64_t n, int16_t* e) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(q[i]));
  // |sum_i e_i c_i| <= n * qmax * 127 must fit in int32.
  const float qmax = float(std::min<int64_t>(32767, (int64_t{1} << 31) / (127 * std::max<int64_t>(n, 1)) - 1));
  const float d = amax / qmax;
  const float id = d > 0 ? 1.0f / d : 0.0f;
  for (int64_t i = 0; i < n; ++i) e[i] = int16_t(std::clamp(std::nearbyint(q[i] * id), -qmax, qmax));
  for (int64_t i = n; i < (n + 31) / 32 * 32; ++i) e[i] = 0;
  return d;
}

namespace {
void scores_scalar(const int16_t* e, float dq, const int8_t* k, const float* ks, int64_t len, int64_t kv_stride,
                   int64_t s_stride, int64_t head_dim, float scale, float* scores) {
  for (int64_t j = 0; j < len; ++j) {
    const int8_t* kj = k + j * kv_stride;
    int32_t s = 0;
    for (int64_t d = 0; d < head_dim; ++d) s += int32_t(e[d]) * kj[d];
    scores[j] = float(s) * (dq * ks[j * s_stride] * scale);
  }
}

void accum_scalar(const float* p, const int8_t* v, const float* vs, int64_t len, int64_t kv_stride, int64_t s_stride,
                  int64_t head_dim, float* out) {
  std::vector<double> acc(static_cast<size_t>(head_dim), 0.0);
  for (int64_t j = 0; j < len; ++j) {
    const int8_t* vj = v + j * kv_stride;
    const double w = double(p[j]) * vs[j * s_stride];
    for (int64_t d = 0; d < head_dim; ++d) acc[d] += w * vj[d];
  }
  for (int64_t d = 0; d < head_dim; ++d) out[d] = float(acc[d]);
}

void dequant_scalar(const int8_t* q, const float* s, int64_t rows, int64_t cols, float* x) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] = s[r] * float(q[r * cols + c]);
}

// One query row against positions 0..len-1 of one KV head.
void attend_row(const Kernels& kern, const float* qh, const int8_t* k, const float* ks, const int8_t* v,
                const float* vs, float* oh, float* scores, int64_t len, int64_t kv_stride, int64_t s_stride,
                int64_t head_dim, float scale) {
  // The query's int16 codes (stack buffer for usual head sizes).
  int16_t buf[1024];
  std::vector<int16_t> big;
  int16_t* e = buf;
  if (head_dim > 1024 - 32) {
    big.resize(static_cast<size_t>(head_dim + 32));
    e = big.data();
  }
  const float dq = quantize_query(qh, head_dim, e);
  kern.scores(e, dq, k, ks, len, kv_stride, s_stride, head_dim, scale, scores);
  softmax_fast(scores, len);  // as the f32 cache's decode rows (ops.cpp): +5% at depth 1536
  kern.accum(scores, v, vs, len, kv_stride, s_stride, head_dim, oh);
}
}  // namespace

// Defined in attention_q8_avx512.cpp / attention_q8_avx2.cpp.
extern const Kernels kAvx512, kAvx2;

const Kernels& scalar() {
  static const Kernels k{"scalar", scores_scalar, accum_scalar, dequant_scalar};
  return k;
}
const Kernels& avx512() { return kAvx512; }
const Kernels& avx2() { return kAvx2; }

bool cpu_avx512() {
  const auto& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl;
}
bool cpu_avx2() {
  const auto& f = cpu_features();
  return f.avx2 && f.fma;
}

const Kernels& best() {
  static const Kernels& k = cpu_avx512() ? avx512() : cpu_avx2() ? avx2() : scalar();
  return k;
}

void attention_with(const Kernels& kern, const float* q, const int8_t* k, const float* ks, const int8_t* v,
                    const float* vs, float* out, int64_t n_tokens, int64_t pos0, int64_t n_heads, int64_t n_kv_heads,
                    int64_t head_dim, int64_t cap) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t q_stride = n_heads * head_dim, panel = cap * head_dim;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const int64_t L = pos0 + n_tokens;
  // As kernels::attention: enough arithmetic, or enough int8 KV to stream that two cores beat one.
  const int64_t kv_bytes = 2 * L * n_kv_heads * (head_dim + int64_t{sizeof(float)});
  const bool parallel = n_tokens * n_heads * L * head_dim > (1 << 16) || kv_bytes >= kParallelMinBytes;
  if (n_tokens >= 8) {
    // Prefill: widen each KV head's panel once per thread (L x head_dim, cheap
    // next to the n_tokens x L products, and it stays in cache) and run the
    // f32 two-GEMM path on it. Static chunks of consecutive heads share KV heads.
    // The queries are rounded to their int16 grid first, as decode rows see
    // them, so prefill and decode compute the same scores (to f32 rounding).
    std::vector<float> qr(static_cast<size_t>(n_tokens * q_stride));
    std::vector<int16_t> e(static_cast<size_t>(head_dim + 32));
    for (int64_t r = 0; r < n_tokens * n_heads; ++r) {
      const float dq = quantize_query(q + r * head_dim, head_dim, e.data());
      for (int64_t i = 0; i < head_dim; ++i) qr[r * head_dim + i] = dq * float(e[i]);
    }
    q = qr.data();
#pragma omp parallel if (parallel)
    {
      std::vector<float> kf(static_cast<size_t>(L * head_dim)), vf(kf.size()), S(static_cast<size_t>(n_tokens * L));
      int64_t have = -1;
#pragma omp for schedule(static)
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t kh = h / group;
        if (kh != have) {
          kern.dequant(k + kh * panel, ks + kh * cap, L, head_dim, kf.data());
          kern.dequant(v + kh * panel, vs + kh * cap, L, head_dim, vf.data());
          have = kh;
        }
        attention_head_gemm(q + h * head_dim, kf.data(), vf.data(), out + h * head_dim, S.data(), n_tokens, pos0,
                            q_stride, head_dim, head_dim, scale);
      }
    }
    return;
  }
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(L));
#pragma omp for collapse(2) schedule(static)
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t kh = h / group;
        attend_row(kern, q + t * q_stride + h * head_dim, k + kh * panel, ks + kh * cap, v + kh * panel, vs + kh * cap,
                   out + t * q_stride + h * head_dim, scores.data(), pos0 + t + 1, head_dim, 1, head_dim, scale);
      }
  }
}

}  // namespace q8attn

void attention_q8(const float* q, const int8_t* k, const float* ks, const int8_t* v, const float* vs, float* out,
                  int64_t n_tokens, int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t cap) {
  q8attn::attention_with(q8attn::best(), q, k, ks, v, vs, out, n_tokens, pos0, n_heads, n_kv_heads, head_dim, cap);
}

void attention_q8_ref(const float* q, const int8_t* k, const float* ks, const int8_t* v, const float* vs, float* out,
                      int64_t n_tokens, int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                      int64_t cap) {
  const auto& kern = q8attn::scalar();
  const int64_t group = n_heads / n_kv_heads;
  const int64_t q_stride = n_heads * head_dim, panel = cap * head_dim;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  std::vector<float> scores(static_cast<size_t>(pos0 + n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kh = h / group;
      q8attn::attend_row(kern, q + t * q_stride + h * head_dim, k + kh * panel, ks + kh * cap, v + kh * panel,
                         vs + kh * cap, out + t * q_stride + h * head_dim, scores.data(), pos0 + t + 1, head_dim, 1,
                         head_dim, scale);
    }
}

const char* attention_q8_isa() { return q8attn::best().name; }

}  // namespace shrink::kernels
