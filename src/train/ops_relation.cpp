// train/ops.h's relation(): scaled dot products (optionally softmaxed) of two
// projections within each causal sequence, for attention-map and value-relation
// distillation losses (TinyBERT, Jiao et al. 2020; MiniLM, Wang et al. 2020).
// Plain loops: the maps are small (sequences of distillation batches).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "train/ops.h"

namespace shrink::train {

Var relation(Var a, Var b, int64_t a_heads, int64_t b_heads, int64_t head_dim, int64_t seq_len, bool softmax) {
  const int64_t n = a->rows();
  SHRINK_CHECK(b_heads > 0 && a_heads % b_heads == 0, "relation: ", a_heads, " heads do not group over ", b_heads);
  SHRINK_CHECK(a->cols() == a_heads * head_dim && b->cols() == b_heads * head_dim && b->rows() == n,
               "relation: shapes ", shape_str(a->value.shape), " and ", shape_str(b->value.shape), " are not ",
               a_heads, " and ", b_heads, " heads of ", head_dim);
  SHRINK_CHECK(seq_len > 0 && n % seq_len == 0, "relation: ", n, " tokens are not whole sequences of ", seq_len);
  const int64_t n_seqs = n / seq_len, group = a_heads / b_heads, ac = a->cols(), bc = b->cols();
  const float inv = 1.0f / std::sqrt(float(head_dim));
  Var y = a->graph->make(Tensor::zeros(DType::F32, {a_heads * n, seq_len}), {a, b});
  // Row of head h, token t (global), and the first row of its sequence.
  auto row_of = [=](int64_t h, int64_t t) { return y->v() + (h * n + t) * seq_len; };
#pragma omp parallel for schedule(static) if (n * seq_len * ac > (1 << 16))
  for (int64_t sh = 0; sh < n_seqs * a_heads; ++sh) {
    const int64_t s = sh / a_heads, h = sh % a_heads, hb = h / group;
    for (int64_t i = 0; i < seq_len; ++i) {
      const int64_t t = s * seq_len + i;
      float* row = row_of(h, t);
      const float* at = a->v() + t * ac + h * head_dim;
      for (int64_t j = 0; j <= i; ++j) {
        const float* bj = b->v() + (s * seq_len + j) * bc + hb * head_dim;
        float dot = 0;
        for (int64_t d = 0; d < head_dim; ++d) dot += at[d] * bj[d];
        row[j] = dot * inv;
      }
      if (!softmax) continue;
      const float mx = *std::max_element(row, row + i + 1);
      float sum = 0;
      for (int64_t j = 0; j <= i; ++j) sum += (row[j] = std::exp(row[j] - mx));
      for (int64_t j = 0; j <= i; ++j) row[j] /= sum;
    }
  }
  if (!y->requires_grad) return y;
  y->backward = [=] {
    // d scores: dy itself, or through the softmax P ⊙ (dP − Σ_j dP·P) per row; then
    // da_h[t] += Σ_j ds[t,j]·b[j]/√d and db[j] += Σ_t ds[t,j]·a_h[t]/√d. Parallel over
    // (sequence, b's head): each owns its db panel and its heads' da rows.
#pragma omp parallel for schedule(static) if (n * seq_len * ac > (1 << 16))
    for (int64_t sb = 0; sb < n_seqs * b_heads; ++sb) {
      const int64_t s = sb / b_heads, hb = sb % b_heads;
      std::vector<float> ds(seq_len);
      for (int64_t h = hb * group; h < (hb + 1) * group; ++h)
        for (int64_t i = 0; i < seq_len; ++i) {
          const int64_t t = s * seq_len + i, r = (h * n + t) * seq_len;
          const float *p = y->v() + r, *dy = y->g() + r;
          float dot = 0;
          if (softmax)
            for (int64_t j = 0; j <= i; ++j) dot += dy[j] * p[j];
          for (int64_t j = 0; j <= i; ++j) ds[j] = (softmax ? p[j] * (dy[j] - dot) : dy[j]) * inv;
          const float* at = a->v() + t * ac + h * head_dim;
          for (int64_t j = 0; j <= i; ++j) {
            const int64_t bj = (s * seq_len + j) * bc + hb * head_dim;
            for (int64_t d = 0; d < head_dim; ++d) {
              if (a->requires_grad) a->g()[t * ac + h * head_dim + d] += ds[j] * b->v()[bj + d];
              if (b->requires_grad) b->g()[bj + d] += ds[j] * at[d];
            }
          }
        }
    }
  };
  return y;
}

}  // namespace shrink::train
