#include "kernels/attention_f32.h"

#include "kernels/attention_q8.h"

namespace shrink::kernels::f32attn {

namespace {

// The reference (and the path of CPUs without AVX2): scores summed in double.
void scores_scalar(const float* q, const float* k, int64_t len, int64_t kv_stride, int64_t head_dim, float scale,
                   float* scores) {
  for (int64_t j = 0; j < len; ++j) {
    const float* kj = k + j * kv_stride;
    double s = 0;
    for (int64_t d = 0; d < head_dim; ++d) s += double(q[d]) * kj[d];
    scores[j] = float(s) * scale;
  }
}

void accum_scalar(const float* p, const float* v, int64_t len, int64_t kv_stride, int64_t head_dim, float* out) {
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
  for (int64_t j = 0; j < len; ++j)  // rows front to back (the scalar path is also the fallback on old CPUs)
    for (int64_t d = 0; d < head_dim; ++d) out[d] += p[j] * v[j * kv_stride + d];
}

}  // namespace

// Defined in attention_f32_avx512.cpp / attention_f32_avx2.cpp.
extern const Kernels kAvx512, kAvx2;

const Kernels& scalar() {
  static const Kernels k{"scalar", scores_scalar, accum_scalar};
  return k;
}
const Kernels& avx512() { return kAvx512; }
const Kernels& avx2() { return kAvx2; }

const Kernels& best() {
  static const Kernels& k = q8attn::cpu_avx512() ? avx512() : q8attn::cpu_avx2() ? avx2() : scalar();
  return k;
}

}  // namespace shrink::kernels::f32attn
