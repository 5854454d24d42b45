// Scalar reference of the quantized dot products, the activation quantizers,
// run-time dispatch and the threaded qgemv / qmatmul. The per-block formulas
// follow ggml's generic vec_dot_*_generic / quantize_row_q8_*_ref
// (ggml/src/ggml-cpu/quants.c, ggml/src/ggml-quants.c of ggml-org/llama.cpp),
// rewritten from the block layouts documented in quant_blocks.h / quant_kblocks.h.
#include "kernels/qdot.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

namespace {

// ---------------------------------------------------------------------------
// Activation quantizers (scalar reference).

// ggml's x86 quantize_row_q8_0/q8_1 (arch/x86/quants.c): id = 127/amax and
// round half to even (what _mm256_round_ps(_MM_ROUND_NEAREST) does); the
// generic C reference instead uses 1/d and roundf, which differs on ties only.
// std::nearbyint rounds half to even in the default rounding mode.
template <bool kSum>
void quantize_q8_32_ref(const float* x, int8_t* qs, uint16_t* d_out, uint16_t* s_out) {
  float amax = 0;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int sum = 0;
  for (int j = 0; j < kQK; ++j) {
    const int q = static_cast<int>(std::nearbyint(x[j] * id));
    qs[j] = static_cast<int8_t>(q);
    sum += q;
  }
  *d_out = f32_to_f16(d);
  if constexpr (kSum) *s_out = f32_to_f16(d * static_cast<float>(sum));
}

// ggml's quantize_row_q8_K_ref: the first value of largest magnitude maps to
// -127 (iscale = -127/max), codes rounded half to even and clipped at 127;
// d = 1/iscale. An all-zero block gets d = 0, zero codes and zero sums.
void quantize_q8_k_block_ref(const float* x, BlockQ8_K* b) {
  float amax = 0, vmax = 0;
  for (int j = 0; j < kQK_K; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      vmax = x[j];
    }
  if (amax == 0.0f) {
    std::memset(b, 0, sizeof(*b));
    return;
  }
  const float iscale = -127.0f / vmax;
  for (int j = 0; j < kQK_K; ++j)
    b->qs[j] = static_cast<int8_t>(std::min(127, static_cast<int>(std::nearbyint(iscale * x[j]))));
  for (int s = 0; s < kQK_K / 16; ++s) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += b->qs[16 * s + j];
    b->bsums[s] = static_cast<int16_t>(sum);
  }
  b->d = 1.0f / iscale;
}

// ---------------------------------------------------------------------------
// Element codes of the weight blocks (the meaning is dequantize_* in
// quant_blocks.cpp / quant_kblocks.cpp; repeated here to keep the reference
// self-contained and readable).

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
// 4-bit code of element j (0..31) of a 32-value block: low nibbles first.
inline int nib32(const uint8_t* qs, int j) { return j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4); }
// Q2_K/Q3_K 2-bit code of element e (0..255).
inline int crumb(const uint8_t* qs, int e) { return (qs[32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3; }
// Q4_K/Q5_K 4-bit code of element e.
inline int nib256(const uint8_t* qs, int e) { return (qs[32 * (e >> 6) + (e & 31)] >> (4 * ((e >> 5) & 1))) & 15; }
// Bit e/32 of bytes[e%32] (Q3_K hmask, Q5_K qh).
inline int lane_bit(const uint8_t* bytes, int e) { return (bytes[e & 31] >> (e >> 5)) & 1; }
inline int q6_code(const BlockQ6_K& b, int e) {
  const int h = e >> 7, g = (e >> 5) & 3, l = e & 31;
  return ((b.ql[64 * h + 32 * (g & 1) + l] >> (4 * (g >> 1))) & 15) | (((b.qh[32 * h + l] >> (2 * g)) & 3) << 4);
}

// ---------------------------------------------------------------------------
// Scalar dots, one row of nb blocks against nb activation blocks. Integer
// sums are exact per block; the f32 scale arithmetic per block is ggml's.

float dot_q8_0_ref(const BlockQ8_0* w, const BlockQ8_0* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int s = 0;
    for (int j = 0; j < kQK; ++j) s += w[i].qs[j] * a[i].qs[j];
    sum += static_cast<float>(s) * (f16_to_f32(w[i].d) * f16_to_f32(a[i].d));
  }
  return sum;
}

float dot_q4_0_ref(const BlockQ4_0* w, const BlockQ8_0* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int s = 0;
    for (int j = 0; j < kQK; ++j) s += (nib32(w[i].qs, j) - 8) * a[i].qs[j];
    sum += static_cast<float>(s) * (f16_to_f32(w[i].d) * f16_to_f32(a[i].d));
  }
  return sum;
}

float dot_q5_0_ref(const BlockQ5_0* w, const BlockQ8_0* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint32_t h = load_u32(w[i].qh);
    int s = 0;
    for (int j = 0; j < kQK; ++j) s += ((nib32(w[i].qs, j) | (((h >> j) & 1) << 4)) - 16) * a[i].qs[j];
    sum += static_cast<float>(s) * (f16_to_f32(w[i].d) * f16_to_f32(a[i].d));
  }
  return sum;
}

// Affine blocks: sum_j (d q_j + m) * a_j = d*da*sum(q a) + m*(da*sum(a)), the
// last factor being the activation block's s.
float dot_q4_1_ref(const BlockQ4_1* w, const BlockQ8_1* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int s = 0;
    for (int j = 0; j < kQK; ++j) s += nib32(w[i].qs, j) * a[i].qs[j];
    sum += static_cast<float>(s) * (f16_to_f32(w[i].d) * f16_to_f32(a[i].d)) + f16_to_f32(w[i].m) * f16_to_f32(a[i].s);
  }
  return sum;
}

float dot_q5_1_ref(const BlockQ5_1* w, const BlockQ8_1* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint32_t h = load_u32(w[i].qh);
    int s = 0;
    for (int j = 0; j < kQK; ++j) s += (nib32(w[i].qs, j) | (((h >> j) & 1) << 4)) * a[i].qs[j];
    sum += static_cast<float>(s) * (f16_to_f32(w[i].d) * f16_to_f32(a[i].d)) + f16_to_f32(w[i].m) * f16_to_f32(a[i].s);
  }
  return sum;
}

// Q2_K: x = d*sc*q - dmin*m per 16 values; the m part only needs the
// activation's 16-value sums (bsums).
float dot_q2_k_ref(const BlockQ2_K* w, const BlockQ8_K* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int isum = 0, msum = 0;
    for (int s = 0; s < 16; ++s) {
      int p = 0;
      for (int e = 16 * s; e < 16 * s + 16; ++e) p += crumb(w[i].qs, e) * a[i].qs[e];
      isum += (w[i].scales[s] & 15) * p;
      msum += (w[i].scales[s] >> 4) * a[i].bsums[s];
    }
    sum += a[i].d * f16_to_f32(w[i].d) * static_cast<float>(isum) - a[i].d * f16_to_f32(w[i].dmin) * static_cast<float>(msum);
  }
  return sum;
}

float dot_q3_k_ref(const BlockQ3_K* w, const BlockQ8_K* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int isum = 0;
    for (int s = 0; s < 16; ++s) {
      int p = 0;
      for (int e = 16 * s; e < 16 * s + 16; ++e)
        p += (crumb(w[i].qs, e) - (lane_bit(w[i].hmask, e) ? 0 : 4)) * a[i].qs[e];
      isum += (q3_k_scale(s, w[i].scales) - 32) * p;
    }
    sum += a[i].d * f16_to_f32(w[i].d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K/Q5_K: x = d*sc*q - dmin*m per 32 values.
template <bool kQ5, typename Block>
float dot_q45_k_ref(const Block* w, const BlockQ8_K* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int isum = 0, msum = 0;
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      k4_scale_min(s, w[i].scales, &sc, &m);
      int p = 0;
      for (int e = 32 * s; e < 32 * s + 32; ++e) {
        int q = nib256(w[i].qs, e);
        if constexpr (kQ5) q |= lane_bit(w[i].qh, e) << 4;
        p += q * a[i].qs[e];
      }
      isum += sc * p;
      msum += m * (a[i].bsums[2 * s] + a[i].bsums[2 * s + 1]);
    }
    sum += a[i].d * f16_to_f32(w[i].d) * static_cast<float>(isum) - a[i].d * f16_to_f32(w[i].dmin) * static_cast<float>(msum);
  }
  return sum;
}

float dot_q6_k_ref(const BlockQ6_K* w, const BlockQ8_K* a, int64_t nb) {
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int isum = 0;
    for (int s = 0; s < 16; ++s) {
      int p = 0;
      for (int e = 16 * s; e < 16 * s + 16; ++e) p += (q6_code(w[i], e) - 32) * a[i].qs[e];
      isum += w[i].scales[s] * p;
    }
    sum += a[i].d * f16_to_f32(w[i].d) * static_cast<float>(isum);
  }
  return sum;
}

float dot_ref(DType t, const void* w, const void* a, int64_t nb) {
  switch (t) {
    case DType::Q8_0: return dot_q8_0_ref(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(a), nb);
    case DType::Q4_0: return dot_q4_0_ref(static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(a), nb);
    case DType::Q5_0: return dot_q5_0_ref(static_cast<const BlockQ5_0*>(w), static_cast<const BlockQ8_0*>(a), nb);
    case DType::Q4_1: return dot_q4_1_ref(static_cast<const BlockQ4_1*>(w), static_cast<const BlockQ8_1*>(a), nb);
    case DType::Q5_1: return dot_q5_1_ref(static_cast<const BlockQ5_1*>(w), static_cast<const BlockQ8_1*>(a), nb);
    case DType::Q2_K: return dot_q2_k_ref(static_cast<const BlockQ2_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
    case DType::Q3_K: return dot_q3_k_ref(static_cast<const BlockQ3_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
    case DType::Q4_K:
      return dot_q45_k_ref<false>(static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
    case DType::Q5_K:
      return dot_q45_k_ref<true>(static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
    case DType::Q6_K: return dot_q6_k_ref(static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
    default: fail("quantized dot: unsupported weight type ", dtype_name(t));
  }
}

// ---------------------------------------------------------------------------
// Dispatch.

using RowsFn = void (*)(DType, const void*, const void*, float*, int64_t, int64_t);
using QuantFn = void (*)(DType, const float*, void*, int64_t);

// avx512 path: F/BW/VL + VNNI (vpdpbusd, vpdpwssd) + F16C/FMA; an AVX-512 CPU
// without VNNI (Skylake-X) takes the AVX2 path.
enum class Isa { Avx512, Avx2, Scalar };
Isa pick_isa() {
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512_vnni && f.fma && f.f16c) return Isa::Avx512;
  if (f.avx2 && f.fma && f.f16c) return Isa::Avx2;
  return Isa::Scalar;
}
const Isa kIsa = pick_isa();

RowsFn rows_fn() {
  return kIsa == Isa::Avx512 ? qdot_impl::rows_avx512 : kIsa == Isa::Avx2 ? qdot_impl::rows_avx2 : qdot_impl::rows_ref;
}
QuantFn quant_fn() {
  return kIsa == Isa::Avx512 ? qdot_impl::quantize_act_avx512
         : kIsa == Isa::Avx2 ? qdot_impl::quantize_act_avx2
                             : quantize_act_ref;
}

void check_shape(DType t, int64_t cols) {
  SHRINK_CHECK(qdot_supported(t), "quantized dot: unsupported weight type ", dtype_name(t));
  const int64_t be = dtype_traits(t).block_elems;
  SHRINK_CHECK(cols >= 0 && cols % be == 0, "quantized dot: ", dtype_name(t), " rows need a multiple of ", be,
               " columns, got ", cols);
}

// Activation buffer reused across calls on the same thread (decode calls
// qgemv hundreds of times per token with a handful of sizes).
std::vector<uint8_t>& act_buffer(int64_t bytes) {
  thread_local std::vector<uint8_t> buf;
  if (static_cast<int64_t>(buf.size()) < bytes) buf.resize(static_cast<size_t>(bytes));
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------

bool qdot_supported(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return true;
    default: return false;
  }
}

QAct qdot_act_type(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q5_0: return QAct::Q8_0;
    case DType::Q4_1: case DType::Q5_1: return QAct::Q8_1;
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return QAct::Q8_K;
    default: fail("quantized dot: unsupported weight type ", dtype_name(t));
  }
}

int64_t qdot_act_bytes(DType t, int64_t n) {
  switch (qdot_act_type(t)) {
    case QAct::Q8_0: return n / kQK * int64_t{sizeof(BlockQ8_0)};
    case QAct::Q8_1: return n / kQK * int64_t{sizeof(BlockQ8_1)};
    case QAct::Q8_K: return n / kQK_K * int64_t{sizeof(BlockQ8_K)};
  }
  return 0;
}

void quantize_act_ref(DType t, const float* x, void* act, int64_t n) {
  check_shape(t, n);
  switch (qdot_act_type(t)) {
    case QAct::Q8_0: {
      auto* b = static_cast<BlockQ8_0*>(act);
      for (int64_t i = 0; i < n / kQK; ++i) quantize_q8_32_ref<false>(x + i * kQK, b[i].qs, &b[i].d, nullptr);
      return;
    }
    case QAct::Q8_1: {
      auto* b = static_cast<BlockQ8_1*>(act);
      for (int64_t i = 0; i < n / kQK; ++i) quantize_q8_32_ref<true>(x + i * kQK, b[i].qs, &b[i].d, &b[i].s);
      return;
    }
    case QAct::Q8_K: {
      auto* b = static_cast<BlockQ8_K*>(act);
      for (int64_t i = 0; i < n / kQK_K; ++i) quantize_q8_k_block_ref(x + i * kQK_K, b + i);
      return;
    }
  }
}

void dequantize_act(DType t, const void* act, float* out, int64_t n) {
  check_shape(t, n);
  switch (qdot_act_type(t)) {
    case QAct::Q8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(act);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(b[i / kQK].d) * float(b[i / kQK].qs[i % kQK]);
      return;
    }
    case QAct::Q8_1: {
      const auto* b = static_cast<const BlockQ8_1*>(act);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(b[i / kQK].d) * float(b[i / kQK].qs[i % kQK]);
      return;
    }
    case QAct::Q8_K: {
      const auto* b = static_cast<const BlockQ8_K*>(act);
      for (int64_t i = 0; i < n; ++i) out[i] = b[i / kQK_K].d * float(b[i / kQK_K].qs[i % kQK_K]);
      return;
    }
  }
}

void quantize_act(DType t, const float* x, void* act, int64_t n) {
  static const QuantFn fn = quant_fn();
  check_shape(t, n);
  fn(t, x, act, n);
}

float vec_dot_ref(DType t, const void* w, const void* act, int64_t n) {
  check_shape(t, n);
  return dot_ref(t, w, act, n / dtype_traits(t).block_elems);
}

float vec_dot(DType t, const void* w, const void* act, int64_t n) {
  static const RowsFn fn = rows_fn();
  check_shape(t, n);
  float y = 0;
  fn(t, w, act, &y, 1, n);
  return y;
}

void qdot_impl::rows_ref(DType t, const void* W, const void* act, float* y, int64_t rows, int64_t cols) {
  const int64_t nb = cols / dtype_traits(t).block_elems, row_bytes = nb * dtype_traits(t).block_bytes;
  for (int64_t r = 0; r < rows; ++r) y[r] = dot_ref(t, static_cast<const char*>(W) + r * row_bytes, act, nb);
}

bool qdot_impl::cpu_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma");
}
bool qdot_impl::cpu_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

void qdot_rows(DType t, const void* W, const void* act, float* y, int64_t rows, int64_t cols) {
  static const RowsFn fn = rows_fn();
  check_shape(t, cols);
  if (rows > 0) fn(t, W, act, y, rows, cols);
}

const char* qdot_isa() { return kIsa == Isa::Avx512 ? "avx512vnni" : kIsa == Isa::Avx2 ? "avx2" : "scalar"; }

bool qdot_has_simd(const char* isa, DType t) {
  const std::string_view s = isa;
  if (s == "avx512vnni") return qdot_impl::has_avx512(t);
  if (s == "avx2") return qdot_impl::has_avx2(t);
  return false;
}

void qgemv_ref(DType t, const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  check_shape(t, cols);
  std::vector<uint8_t> act(static_cast<size_t>(qdot_act_bytes(t, cols)));
  quantize_act_ref(t, x, act.data(), cols);
  qdot_impl::rows_ref(t, W, act.data(), y, rows, cols);
}

namespace {
// The parts' rows laid end to end, split in slabs over `threads` threads; a
// slab crossing a part boundary runs as one piece per part. x is quantized once.
void parts_threads(DType t, const QGemvPart* parts, int n_parts, const float* x, int64_t cols, int threads) {
  static const RowsFn fn = rows_fn();
  std::vector<uint8_t>& act = act_buffer(qdot_act_bytes(t, cols));
  quantize_act(t, x, act.data(), cols);
  const int64_t row_bytes = dtype_bytes(t, cols);
  const uint8_t* a = act.data();
  for_part_slabs(parts, n_parts, threads, [&](const QGemvPart& part, int64_t b, int64_t e) {
    fn(t, static_cast<const char*>(part.W) + b * row_bytes, a, part.y + b, e - b, cols);
  });
}
}  // namespace

void qgemv_threads(DType t, const void* W, const float* x, float* y, int64_t rows, int64_t cols, int threads) {
  check_shape(t, cols);
  const QGemvPart whole{W, y, rows};
  parts_threads(t, &whole, 1, x, cols, threads);
}

void qgemv(DType t, const void* W, const float* x, float* y, int64_t rows, int64_t cols) {
  check_shape(t, cols);
  qgemv_threads(t, W, x, y, rows, cols, decode_threads(rows * dtype_bytes(t, cols)));
}

void qgemv_parts(DType t, const QGemvPart* parts, int n_parts, const float* x, int64_t cols) {
  int64_t rows = 0;
  for (int i = 0; i < n_parts; ++i) rows += parts[i].rows;
  check_shape(t, cols);
  parts_threads(t, parts, n_parts, x, cols, decode_threads(rows * dtype_bytes(t, cols)));
}

// Measured with bench/qdot_bench.cpp BM_QMatmul (4096 x 4096, 2 threads):
// the quantized dots win up to n = 64 for every K-quant and Q4_0 (96 ms vs
// 159 ms for Q4_K at n = 64) because dequantization to f32 (convert_to_f32,
// scalar) costs more than the sgemm it feeds; Q8_0, the cheapest to
// dequantize, breaks even near n = 64.
int64_t qmatmul_dequant_min_n(DType t) { return t == DType::Q8_0 ? 64 : 128; }

void qmatmul(DType t, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols) {
  check_shape(t, cols);
  if (n == 1) return qgemv(t, W, x, y, rows, cols);
  if (n < qmatmul_dequant_min_n(t)) return qmatmul_quantized(t, W, x, y, n, rows, cols);
  qmatmul_dequant(t, W, x, y, n, rows, cols);
}

void qmatmul_quantized(DType t, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols) {
  static const RowsFn fn = rows_fn();
  check_shape(t, cols);
  if (n <= 0 || rows <= 0) return;
  const int64_t row_bytes = dtype_bytes(t, cols);
  // Every input quantized once, then each thread walks its slab of rows in
  // panels small enough to stay in L2 while all n inputs are multiplied with
  // them (each output is exactly what qgemv computes for that input).
  const int64_t ab = qdot_act_bytes(t, cols);
  std::vector<uint8_t> act(static_cast<size_t>(n * ab));
  for (int64_t i = 0; i < n; ++i) quantize_act(t, x + i * cols, act.data() + i * ab, cols);
  const int64_t panel = std::max<int64_t>(kRowAlign, (int64_t{1} << 20) / std::max<int64_t>(row_bytes, 1));
  for_row_slabs(rows, team_threads(), [&](int64_t r_begin, int64_t r_end) {
    for (int64_t r0 = r_begin; r0 < r_end; r0 += panel) {
      const int64_t nr = std::min(panel, r_end - r0);
      for (int64_t k = 0; k < n; ++k)
        fn(t, static_cast<const char*>(W) + r0 * row_bytes, act.data() + k * ab, y + k * rows + r0, nr, cols);
    }
  });
}

void qmatmul_dequant(DType t, const void* W, const float* x, float* y, int64_t n, int64_t rows, int64_t cols) {
  check_shape(t, cols);
  if (n <= 0 || rows <= 0) return;
  const int64_t row_bytes = dtype_bytes(t, cols);
  // Panels of W dequantized to f32, then sgemm (row_slabs.h).
  panel_sgemm(n, rows, cols, x, y, [&](int64_t r0, int64_t nr, float* wf) {
    convert_to_f32(t, static_cast<const char*>(W) + r0 * row_bytes, wf, nr * cols);
  });
}

}  // namespace shrink::kernels
