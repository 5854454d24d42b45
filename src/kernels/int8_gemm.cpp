// Scalar references of the W8A8 kernels, run-time dispatch, the threaded
// GEMV / small-n product over the row kernels, and the oneDNN int8 matmul for
// prefill. The SIMD row kernels, epilogues and quantizers live in
// int8_gemm_avx512.cpp / int8_gemm_avx2.cpp.
#include "kernels/int8_gemm.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

namespace {

// ---------------------------------------------------------------------------
// Scalar references.

// _mm512_min_ps(a, b) / _mm512_max_ps(a, b) exactly, NaN included (the second
// operand is returned when either is NaN), so the SIMD quantizers and this
// reference agree on every input.
inline float simd_min(float a, float b) { return a < b ? a : b; }
inline float simd_max(float a, float b) { return a > b ? a : b; }

// Below this amax a row quantizes to scale 0 and codes 0 (127 / amax would
// not be finite for subnormal amax). Mirrored in the SIMD quantizers.
constexpr float kMinAmax = 1e-30f;

}  // namespace

void int8_impl::quantize_ref(const float* x, int64_t n, int64_t k, float static_scale, int8_t* q, float* scales) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    int8_t* qi = q + i * k;
    float id;
    if (static_scale != 0.0f) {
      id = 1.0f / static_scale;
      if (scales) scales[i] = static_scale;
    } else {
      float amax = 0.0f;
      for (int64_t c = 0; c < k; ++c) amax = simd_max(std::fabs(xi[c]), amax);
      if (amax < kMinAmax) {
        std::memset(qi, 0, static_cast<size_t>(k));
        scales[i] = 0.0f;
        continue;
      }
      id = 127.0f / amax;
      scales[i] = amax / 127.0f;
    }
    for (int64_t c = 0; c < k; ++c) {
      const float v = simd_max(simd_min(xi[c] * id, 127.0f), -127.0f);
      qi[c] = static_cast<int8_t>(static_cast<int>(std::nearbyint(v)));
    }
  }
}

void int8_impl::dot_rows_ref(const int8_t* W, const int32_t*, const int8_t* x, int32_t* acc, int64_t rows,
                             int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* w = W + r * cols;
    int32_t s = 0;  // |s| <= 128 * 128 * kInt8MaxCols < 2^31: no overflow
    for (int64_t c = 0; c < cols; ++c) s += int32_t{w[c]} * int32_t{x[c]};
    acc[r] = s;
  }
}

void int8_impl::scale_ref(const int32_t* acc, int64_t ldacc, const float* x_scales, const float* w_scale,
                          const float* bias, float* y, int64_t ldy, int64_t n, int64_t cols) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      int32_t a;  // acc may share memory with y: read it as bytes
      std::memcpy(&a, acc + i * ldacc + j, sizeof a);
      y[i * ldy + j] = std::fma(static_cast<float>(a), x_scales[i] * w_scale[j], bias ? bias[j] : 0.0f);
    }
}

bool int8_impl::cpu_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma");
}
bool int8_impl::cpu_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

namespace {

// ---------------------------------------------------------------------------
// Dispatch. avx512 = F/BW/VL + VNNI (+FMA for the epilogue); an AVX-512 CPU
// without VNNI takes the AVX2 path. SHRINK_ISA caps it (core/cpu.h).

enum class Isa { Avx512, Avx2, Scalar };
Isa pick_isa() {
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512_vnni && f.fma) return Isa::Avx512;
  if (f.avx2 && f.fma) return Isa::Avx2;
  return Isa::Scalar;
}
Isa isa() {
  static const Isa i = pick_isa();
  return i;
}

struct Kernels {
  int8_impl::DotRowsFn dot;
  int8_impl::ScaleFn scale;
  int8_impl::QuantFn quant;
};
const Kernels& kernels() {
  static const Kernels k =
      isa() == Isa::Avx512 ? Kernels{int8_impl::dot_rows_avx512, int8_impl::scale_avx512, int8_impl::quantize_avx512}
      : isa() == Isa::Avx2 ? Kernels{int8_impl::dot_rows_avx2, int8_impl::scale_avx2, int8_impl::quantize_avx2}
                           : Kernels{int8_impl::dot_rows_ref, int8_impl::scale_ref, int8_impl::quantize_ref};
  return k;
}

void check_weight(const Int8Rows& w) {
  SHRINK_CHECK(w.rows >= 0 && w.cols >= 0, "int8 matmul: negative weight shape ", w.rows, "x", w.cols);
  SHRINK_CHECK(w.cols <= kInt8MaxCols, "int8 matmul: ", w.cols, " input columns exceed the exact-int32 limit ",
               kInt8MaxCols);
  SHRINK_CHECK(w.rows == 0 || (w.q && w.scale && w.row_sum), "int8 matmul: weight without codes, scales or row sums");
}

// Rows whose int32 sums are held on the stack before the epilogue turns them
// into y (one call of the row kernel: its R streams are spread over a chunk).
constexpr int64_t kChunkRows = 2048;

// y[0..rows) for one token: row kernel into an int32 chunk, then the epilogue.
void gemv_slab(const Kernels& k, const Int8Rows& w, int64_t r0, int64_t r1, const int8_t* x, float x_scale,
               const float* bias, float* y) {
  int32_t acc[kChunkRows];
  for (int64_t c0 = r0; c0 < r1; c0 += kChunkRows) {
    const int64_t nr = std::min(kChunkRows, r1 - c0);
    k.dot(w.q + c0 * w.cols, w.row_sum + c0, x, acc, nr, w.cols);
    k.scale(acc, nr, &x_scale, w.scale + c0, bias ? bias + c0 : nullptr, y + c0, nr, 1, nr);
  }
}

// ---------------------------------------------------------------------------
// oneDNN: s8 activations {n x cols} times s8 weights viewed as {cols x rows}
// with strides {1, cols} (format "ba": W as stored, no copy on our side) into
// s32 {n x rows}, written straight into y and scaled in place. Primitives are
// cached by shape; scratchpads are per calling thread (user scratchpad mode),
// so concurrent calls are safe.

struct Prim {
  dnnl::matmul prim;
  size_t scratch_bytes = 0;
};

dnnl::engine& onednn_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

Prim onednn_prim(int64_t n, int64_t rows, int64_t cols) {
  static std::mutex mu;
  static std::map<std::array<int64_t, 4>, Prim> cache;
  // oneDNN sizes a primitive's work split for the thread count at creation
  // (its own primitive cache keys on it too).
  const std::array<int64_t, 4> key{n, rows, cols, team_threads()};
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const dnnl::memory::desc src({n, cols}, dt::s8, tag::ab), wei({cols, rows}, dt::s8, tag::ba),
      dst({n, rows}, dt::s32, tag::ab);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), attr, onednn_engine());
  // Prefill sees a handful of token counts per model; bound the cache anyway.
  if (cache.size() >= 256) cache.clear();
  Prim p{dnnl::matmul(pd), pd.scratchpad_desc().get_size()};
  cache.emplace(key, p);
  return p;
}

// acc [n x w.rows] (int32, may be y's memory) = xq * W^T by oneDNN.
void onednn_s32(const Int8Rows& w, const int8_t* xq, int32_t* acc, int64_t n) {
  try {
    const Prim p = onednn_prim(n, w.rows, w.cols);
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::engine& eng = onednn_engine();
    thread_local std::vector<uint8_t> scratch;
    if (scratch.size() < p.scratch_bytes) scratch.resize(p.scratch_bytes);
    const dnnl::memory src({{n, w.cols}, dt::s8, tag::ab}, eng, const_cast<int8_t*>(xq));
    const dnnl::memory wei({{w.cols, w.rows}, dt::s8, tag::ba}, eng, const_cast<int8_t*>(w.q));
    const dnnl::memory dst({{n, w.rows}, dt::s32, tag::ab}, eng, acc);
    const dnnl::memory sp({{static_cast<int64_t>(p.scratch_bytes)}, dt::u8, tag::a}, eng, scratch.data());
    dnnl::stream s(eng);
    p.prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, sp}});
    s.wait();
  } catch (const dnnl::error& e) {
    fail("oneDNN int8 matmul ", n, "x", w.cols, " * ", w.cols, "x", w.rows, " failed: ", e.what());
  }
}

// Measured with bench/int8_gemm_bench.cpp (BM_Int8SmallN, 4096 x 1536, one
// thread, on a loaded machine): row kernels 0.54 / 0.80 / 1.9 ms at n = 2 / 4
// / 8, oneDNN (AMX brgemm, which first repacks W) 0.79 / 0.80 / 0.82 ms.
constexpr int64_t kOnednnMinN = 8;

}  // namespace

// ---------------------------------------------------------------------------
// Public entry points.

void quantize_rows_s8_ref(const float* x, int64_t n, int64_t k, int8_t* q, float* scales) {
  int8_impl::quantize_ref(x, n, k, 0.0f, q, scales);
}

void quantize_rows_s8_static_ref(const float* x, int64_t n, int64_t k, float scale, int8_t* q, float* scales) {
  SHRINK_CHECK(scale > 0.0f && std::isfinite(1.0f / scale),
               "int8 static activation scale must be a normal positive "
               "number, got ",
               scale);
  int8_impl::quantize_ref(x, n, k, scale, q, scales);
}

void quantize_rows_s8(const float* x, int64_t n, int64_t k, int8_t* q, float* scales) {
  if (n > 0 && k > 0)
    kernels().quant(x, n, k, 0.0f, q, scales);
  else
    for (int64_t i = 0; i < n; ++i) scales[i] = 0.0f;
}

void quantize_rows_s8_static(const float* x, int64_t n, int64_t k, float scale, int8_t* q, float* scales) {
  SHRINK_CHECK(scale > 0.0f && std::isfinite(1.0f / scale),
               "int8 static activation scale must be a normal positive "
               "number, got ",
               scale);
  if (n > 0) kernels().quant(x, n, k, scale, q, scales);
}

void int8_row_sums(const int8_t* q, int64_t rows, int64_t cols, int32_t* row_sum) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int64_t c = 0; c < cols; ++c) s += q[r * cols + c];
    row_sum[r] = s;
  }
}

void quantize_weight_s8(const float* w, int64_t rows, int64_t cols, int8_t* q, float* scale, int32_t* row_sum) {
  quantize_rows_s8(w, rows, cols, q, scale);
  int8_row_sums(q, rows, cols, row_sum);
}

const char* int8_isa() { return isa() == Isa::Avx512 ? "avx512vnni" : isa() == Isa::Avx2 ? "avx2" : "scalar"; }

int64_t int8_onednn_min_n() { return kOnednnMinN; }

void int8_matmul_s32_ref(const Int8Rows& w, const int8_t* xq, int32_t* acc, int64_t n) {
  check_weight(w);
  for (int64_t i = 0; i < n; ++i)
    int8_impl::dot_rows_ref(w.q, w.row_sum, xq + i * w.cols, acc + i * w.rows, w.rows, w.cols);
}

void int8_matmul_ref(const Int8Rows& w, const int8_t* xq, const float* x_scales, const float* bias, float* y,
                     int64_t n) {
  check_weight(w);
  std::vector<int32_t> acc(static_cast<size_t>(w.rows));
  for (int64_t i = 0; i < n; ++i) {
    int8_impl::dot_rows_ref(w.q, w.row_sum, xq + i * w.cols, acc.data(), w.rows, w.cols);
    int8_impl::scale_ref(acc.data(), w.rows, x_scales + i, w.scale, bias, y + i * w.rows, w.rows, 1, w.rows);
  }
}

void int8_matmul_s32(const Int8Rows& w, const int8_t* xq, int32_t* acc, int64_t n) {
  check_weight(w);
  if (n <= 0 || w.rows <= 0) return;
  if (n >= kOnednnMinN && w.cols > 0) return onednn_s32(w, xq, acc, n);
  const Kernels& k = kernels();
  for_row_slabs(w.rows, team_threads(), [&](int64_t r0, int64_t r1) {
    for (int64_t i = 0; i < n; ++i)
      k.dot(w.q + r0 * w.cols, w.row_sum + r0, xq + i * w.cols, acc + i * w.rows + r0, r1 - r0, w.cols);
  });
}

void int8_gemv_threads(const Int8Rows& w, const int8_t* xq, float x_scale, const float* bias, float* y, int threads) {
  check_weight(w);
  if (w.rows <= 0) return;
  const Kernels& k = kernels();
  for_row_slabs(w.rows, threads, [&](int64_t r0, int64_t r1) { gemv_slab(k, w, r0, r1, xq, x_scale, bias, y); });
}

void int8_matmul_rows(const Int8Rows& w, const int8_t* xq, const float* x_scales, const float* bias, float* y,
                      int64_t n) {
  check_weight(w);
  if (n <= 0 || w.rows <= 0) return;
  const Kernels& k = kernels();
  // Each thread walks its slab of rows in panels that stay in L2 (~1 MiB of
  // W) while all n tokens are multiplied with them: W is read from DRAM once.
  const int64_t panel = std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(w.cols, 1), kRowAlign, kChunkRows);
  for_row_slabs(w.rows, team_threads(), [&](int64_t r_begin, int64_t r_end) {
    int32_t acc[kChunkRows];
    for (int64_t r0 = r_begin; r0 < r_end; r0 += panel) {
      const int64_t nr = std::min(panel, r_end - r0);
      for (int64_t i = 0; i < n; ++i) {
        k.dot(w.q + r0 * w.cols, w.row_sum + r0, xq + i * w.cols, acc, nr, w.cols);
        k.scale(acc, nr, x_scales + i, w.scale + r0, bias ? bias + r0 : nullptr, y + i * w.rows + r0, nr, 1, nr);
      }
    }
  });
}

void int8_matmul_onednn(const Int8Rows& w, const int8_t* xq, const float* x_scales, const float* bias, float* y,
                        int64_t n) {
  check_weight(w);
  if (n <= 0 || w.rows <= 0) return;
  if (w.cols == 0) return int8_matmul_rows(w, xq, x_scales, bias, y, n);  // oneDNN rejects K = 0
  static_assert(sizeof(int32_t) == sizeof(float));
  int32_t* acc = reinterpret_cast<int32_t*>(y);  // s32 sums land in y, then are scaled in place
  onednn_s32(w, xq, acc, n);
  const Kernels& k = kernels();
  // Tokens split in kRowAlign blocks, as rows are.
  const int nt = n * w.rows >= (int64_t{1} << 16)
                     ? static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(team_threads(), (n + kRowAlign - 1) / kRowAlign)))
                     : 1;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    k.scale(acc + i * w.rows, w.rows, x_scales + i, w.scale, bias, y + i * w.rows, w.rows, 1, w.rows);
}

void int8_matmul(const Int8Rows& w, const int8_t* xq, const float* x_scales, const float* bias, float* y, int64_t n) {
  check_weight(w);
  if (n <= 0 || w.rows <= 0) return;
  if (n == 1) {
    return int8_gemv_threads(w, xq, x_scales[0], bias, y, decode_threads(w.rows * w.cols));
  }
  if (n < kOnednnMinN) return int8_matmul_rows(w, xq, x_scales, bias, y, n);
  int8_matmul_onednn(w, xq, x_scales, bias, y, n);
}

void int8_linear(const Int8Rows& w, const float* x, float act_scale, const float* bias, float* y, int64_t n) {
  check_weight(w);
  if (n <= 0) return;
  thread_local std::vector<int8_t> xq;
  thread_local std::vector<float> xs;
  xq.resize(static_cast<size_t>(n * w.cols));
  xs.resize(static_cast<size_t>(n));
  if (act_scale == 0.0f)
    quantize_rows_s8(x, n, w.cols, xq.data(), xs.data());
  else
    quantize_rows_s8_static(x, n, w.cols, act_scale, xq.data(), xs.data());
  int8_matmul(w, xq.data(), xs.data(), bias, y, n);
}

}  // namespace shrink::kernels
