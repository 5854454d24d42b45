// The decode primitives of f32 causal attention (kernels::attention in ops.h,
// rows of n_tokens < 8): one query row's scores against a KV head's keys, and
// the probability-weighted sum of its values. Decode streams the whole f32
// KV cache once per token, so at long context these loops run at memory speed
// only if they are vectorised and keep several FMA chains in flight; plain C++
// built for the baseline ISA gave one SSE accumulator per key (~27 GB/s).
// AVX-512 / AVX2 paths are chosen at run time, each tested against the scalar
// reference (tests/kv_cache_test.cpp). Model-agnostic: it sees panels.
#pragma once
#include <cstdint>

namespace shrink::kernels::f32attn {

// Row j of k / v starts at j * kv_stride (elements).
struct Kernels {
  const char* name;
  // scores[j] = dot(q, k_j) * scale for j < len
  void (*scores)(const float* q, const float* k, int64_t len, int64_t kv_stride, int64_t head_dim, float scale,
                 float* scores);
  // out[d] = sum_j p[j] * v_j[d] for d < head_dim
  void (*accum)(const float* p, const float* v, int64_t len, int64_t kv_stride, int64_t head_dim, float* out);
};
const Kernels& scalar();
const Kernels& avx2();    // call only when q8attn::cpu_avx2() (AVX2 + FMA)
const Kernels& avx512();  // call only when q8attn::cpu_avx512() (AVX-512 F + BW + VL)
const Kernels& best();    // what kernels::attention dispatches to

}  // namespace shrink::kernels::f32attn
