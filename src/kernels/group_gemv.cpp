// group_gemv.h: the plan (x in lane order, group sums, per-block group
// tables), the scalar paths, run-time dispatch and threading. The SIMD row
// and dequantization kernels are in group_gemv_avx512.cpp / group_gemv_avx2.cpp.
#include "kernels/group_gemv.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string_view>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/group_gemv_simd.h"
#include "kernels/row_slabs.h"

namespace shrink::kernels {

using group_impl::Plan;

namespace {

inline uint32_t code_at(const uint32_t* row, int64_t c, int bits, int64_t per_word) {
  return (row[c / per_word] >> (bits * (c % per_word))) & ((1u << bits) - 1);
}

inline float level(const GroupQuantView& w, uint32_t q) { return w.levels ? w.levels[q] : float(q); }

// A SIMD lane sums one word's codes before scaling: apart for the two groups
// a straddling word touches (Plan::split), which needs groups of at least two
// words so a word touches at most two groups and a lane block's groups fit
// its lanes. A codebook is a register lookup only for 16 levels.
bool f32_simd_shape(const GroupQuantView& w) {
  if (w.n_groups() > 1 && w.group_len % w.per_word() != 0 && w.group_len < 2 * w.per_word()) return false;
  return !w.levels || w.bits == 4;
}

// The q8 kernels: integer codes whose bytes hold whole codes, words in one group.
bool q8_shape(const GroupQuantView& w) {
  if (w.levels || (w.bits != 2 && w.bits != 4 && w.bits != 8)) return false;
  return w.n_groups() == 1 || w.group_len % w.per_word() == 0;
}

enum class Isa { Scalar, Avx2, Avx512 };

// The kernel for a view: which ISA, whether q8, its row function.
struct Choice {
  Isa isa = Isa::Scalar;
  bool q8 = false;
  int lanes = 1;
};

bool hw_has(Isa isa, bool q8, bool capped) {
  if (isa == Isa::Scalar) return true;
  if (capped) {  // as cpu_features() reports it (SHRINK_ISA caps it)
    const auto& f = cpu_features();
    return isa == Isa::Avx512 ? f.avx512f && f.fma && (!q8 || (f.avx512bw && f.avx512_vnni)) : f.avx2 && f.fma;
  }
  if (isa == Isa::Avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") &&
         (!q8 || (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni")));
}

int lanes_of(Isa isa) { return isa == Isa::Avx512 ? 16 : isa == Isa::Avx2 ? 8 : 1; }

// The semantics (q8 or f32) depend only on the view; the ISA on the CPU.
Choice pick(const GroupQuantView& w) {
  Choice c;
  c.q8 = !w.exact && q8_shape(w);
  const bool simd = c.q8 || f32_simd_shape(w);
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (simd && hw_has(isa, c.q8, true)) {
      c.isa = isa;
      break;
    }
  c.lanes = lanes_of(c.isa);
  return c;
}

// ---------------------------------------------------------------- scalar paths

// f32, natural order, any shape (words may straddle groups: int3 g64): word
// by word, code by code, with the group boundary tracked (no divisions).
void rows_scalar(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const GroupQuantView& w = *p.w;
  const int64_t pw = w.per_word(), wpr = w.words_per_row(), G = w.n_groups(), stride = w.param_stride();
  const uint32_t mask = (1u << w.bits) - 1;
  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t* row = w.packed + r * wpr;
    const float* s = w.scale + r * stride;
    const float* z = w.zero ? w.zero + r * stride : nullptr;
    for (int64_t t = 0; t < p.n; ++t) {
      const float* x = p.xa + t * p.xa_cols;
      float acc = 0, part = 0;
      int64_t g = 0, end = w.group_len, c = 0;
      for (int64_t i = 0; i < wpr; ++i) {
        uint32_t word = row[i];
        for (int64_t k = 0; k < pw && c < w.cols; ++k, ++c, word >>= w.bits) {
          if (c == end) {  // the next group starts
            acc += s[g++] * part;
            part = 0;
            end += w.group_len;
          }
          part += level(w, word & mask) * x[c];
        }
      }
      acc += s[g] * part;
      y[t * ldy + r] = acc - (z ? group_impl::zero_correction(s, z, p.xsum + t * G, G) : 0.0f);
    }
  }
}

// q8 reference: each word's codes times the int8 x in integers, scaled by the
// word's group scale and its block's dx (the arithmetic of the SIMD q8 paths).
void rows_scalar_q8(const Plan& p, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const GroupQuantView& w = *p.w;
  const int64_t pw = w.per_word(), wpr = w.words_per_row(), G = w.n_groups(), stride = w.param_stride();
  const int cpb = 8 / w.bits;
  const uint32_t mask = (1u << w.bits) - 1;
  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t* row = w.packed + r * wpr;
    const float* s = w.scale + r * stride;
    for (int64_t t = 0; t < p.n; ++t) {
      float acc = 0;
      for (int64_t b = 0; b < p.q8_blocks; ++b) {
        const int8_t* xb = p.xq + t * p.xq_stride + b * cpb * 64;
        for (int64_t i = 0; i < group_impl::kQ8Words && b * group_impl::kQ8Words + i < wpr; ++i) {
          const int64_t word = b * group_impl::kQ8Words + i;
          int32_t sum = 0;
          for (int pos = 0; pos < pw; ++pos)
            sum += int32_t((row[word] >> (w.bits * pos)) & mask) * xb[(pos % cpb) * 64 + 4 * i + pos / cpb];
          const int64_t g = G == 1 ? 0 : word * pw / w.group_len;
          acc += float(sum) * (s[g] * p.dx[t * p.q8_blocks + b]);
        }
      }
      y[t * ldy + r] = acc - (w.zero ? group_impl::zero_correction(s, w.zero + r * stride, p.xsum + t * G, G) : 0.0f);
    }
  }
}

void dequant_scalar(const Plan& p, int64_t r0, int64_t r1, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - r0) * p.xa_cols;
    group_dequantize_row(*p.w, r, o);
    std::fill(o + p.w->cols, o + p.xa_cols, 0.0f);
  }
}

// ---------------------------------------------------------------- plan

struct PlanBuffers {
  std::vector<float> xa, xsum, dx;
  std::vector<double> gsum;
  std::vector<int8_t> xq;
  std::vector<int32_t> g0, ng, lane_group, lane_group2, lane_split;
};

// Per lane block of `lanes` words: the groups its words touch (f32 and q8
// kernels scale per lane), and where words straddle two groups, the second
// group and the first code in it (Plan::split).
void make_tables(Plan& p, PlanBuffers& b) {
  const GroupQuantView& w = *p.w;
  const int64_t pw = w.per_word(), wpr = w.words_per_row(), lanes = p.lanes, gl = w.group_len;
  p.blocks = (wpr + lanes - 1) / lanes;
  const size_t cells = static_cast<size_t>(p.blocks * lanes);
  b.g0.assign(static_cast<size_t>(p.blocks), 0);
  b.ng.assign(static_cast<size_t>(p.blocks), 1);
  b.lane_group.assign(cells, 0);
  b.lane_group2.assign(cells, 0);
  b.lane_split.assign(cells, static_cast<int32_t>(pw));
  p.split = false;
  if (lanes > 1 && w.n_groups() > 1)
    for (int64_t blk = 0; blk < p.blocks; ++blk) {
      const int64_t first = blk * lanes * pw / gl;
      int64_t last = first;
      for (int64_t i = 0; i < lanes && blk * lanes + i < wpr; ++i) {
        const int64_t c0 = (blk * lanes + i) * pw, c1 = std::min(c0 + pw, w.cols) - 1;  // the word's first and last code
        const int64_t g1 = c0 / gl, g2 = c1 / gl;
        const size_t cell = static_cast<size_t>(blk * lanes + i);
        b.lane_group[cell] = static_cast<int32_t>(g1 - first);
        b.lane_group2[cell] = static_cast<int32_t>(g2 - first);
        if (g2 != g1) {
          b.lane_split[cell] = static_cast<int32_t>((g1 + 1) * gl - c0);
          p.split = true;
        }
        last = g2;
      }
      b.g0[blk] = static_cast<int32_t>(first);
      b.ng[blk] = static_cast<int32_t>(last - first + 1);
      SHRINK_CHECK(last - first < lanes, "group kernel: a lane block touches more groups than it has lanes");
    }
  p.g0 = b.g0.data();
  p.ng = b.ng.data();
  p.lane_group = b.lane_group.data();
  p.lane_group2 = b.lane_group2.data();
  p.lane_split = b.lane_split.data();
}

// x in lane order and its group sums (f32 kernels and the dequantization path).
void make_f32_input(Plan& p, const float* x, PlanBuffers& b) {
  const GroupQuantView& w = *p.w;
  const int64_t pw = w.per_word(), G = w.n_groups(), lanes = p.lanes;
  p.xa_cols = p.blocks * lanes * pw;
  b.xa.assign(static_cast<size_t>(p.n * p.xa_cols), 0.0f);
  b.xsum.assign(static_cast<size_t>(p.n * G), 0.0f);
  for (int64_t t = 0; t < p.n; ++t) {
    const float* xt = x + t * w.cols;
    float* xa = b.xa.data() + t * p.xa_cols;
    for (int64_t c = 0; c < w.cols; ++c) {
      const int64_t word = c / pw, k = c % pw, blk = word / lanes, lane = word % lanes;
      xa[blk * lanes * pw + k * lanes + lane] = xt[c];
    }
    for (int64_t g = 0; g < G; ++g) {
      double sum = 0;
      for (int64_t c = g * w.group_len; c < std::min(w.cols, (g + 1) * w.group_len); ++c) sum += xt[c];
      b.xsum[t * G + g] = static_cast<float>(sum);
    }
  }
  p.xa = b.xa.data();
  p.xsum = b.xsum.data();
}

// The q8 kernels' rounding of one block of x: d = max|x| / 127 and codes
// round-half-even(x · 127 / max|x|) clamped to ±127 (ggml's x86
// quantize_row_q8_0), half to even by the 1.5 · 2^23 trick, which
// std::nearbyint matches in the default mode.
struct Q8Scale {
  float d, id;
};
Q8Scale q8_scale(const float* x, int64_t n) {
  float amax = 0;
  for (int64_t c = 0; c < n; ++c) amax = std::max(amax, std::fabs(x[c]));
  return {amax / 127.0f, amax > 0 ? 127.0f / amax : 0.0f};
}
inline int q8_code(float x, float id) { return std::clamp(static_cast<int>((x * id + 12582912.0f) - 12582912.0f), -127, 127); }

// x rounded to int8 per block of kQ8Words words, laid out for vpdpbusd (group_gemv_simd.h).
void make_q8_input(Plan& p, const float* x, PlanBuffers& b) {
  const GroupQuantView& w = *p.w;
  const int64_t pw = w.per_word(), G = w.n_groups(), block_cols = group_impl::kQ8Words * pw;
  const int cpb = 8 / w.bits;
  p.q8_blocks = (w.words_per_row() + group_impl::kQ8Words - 1) / group_impl::kQ8Words;
  p.xq_stride = p.q8_blocks * cpb * 64;
  b.xq.assign(static_cast<size_t>(p.n * p.xq_stride), 0);
  b.dx.assign(static_cast<size_t>(p.n * p.q8_blocks), 0.0f);
  std::vector<double>& gsum = b.gsum;
  gsum.resize(static_cast<size_t>(G));
  b.xsum.assign(static_cast<size_t>(p.n * G), 0.0f);
  for (int64_t t = 0; t < p.n; ++t) {
    const float* xt = x + t * w.cols;
    std::fill(gsum.begin(), gsum.end(), 0.0);
    for (int64_t blk = 0; blk < p.q8_blocks; ++blk) {
      const int64_t c0 = blk * block_cols, c1 = std::min(w.cols, c0 + block_cols);
      const auto [d, id] = q8_scale(xt + c0, c1 - c0);
      b.dx[t * p.q8_blocks + blk] = d;
      int8_t* xb = b.xq.data() + t * p.xq_stride + blk * cpb * 64;
      for (int64_t i = 0; i < group_impl::kQ8Words && c0 + i * pw < c1; ++i) {  // word by word (a word lies in one group)
        const int64_t cw = c0 + i * pw;
        int32_t sum = 0;
        for (int64_t pos = 0; pos < pw && cw + pos < c1; ++pos) {
          const int q = q8_code(xt[cw + pos], id);
          xb[(pos % cpb) * 64 + 4 * i + pos / cpb] = static_cast<int8_t>(q);
          sum += q;
        }
        gsum[G == 1 ? 0 : cw / w.group_len] += double(d) * sum;
      }
    }
    for (int64_t g = 0; g < G; ++g) b.xsum[t * G + g] = static_cast<float>(gsum[g]);
  }
  p.xq = b.xq.data();
  p.dx = b.dx.data();
  p.xsum = b.xsum.data();
}

Plan make_plan(const GroupQuantView& w, const float* x, int64_t n, const Choice& c, bool dequant, PlanBuffers& b) {
  Plan p;
  p.w = &w;
  p.n = n;
  p.lanes = c.lanes;
  p.q8 = c.q8 && !dequant;
  make_tables(p, b);
  if (p.q8)
    make_q8_input(p, x, b);
  else
    make_f32_input(p, x, b);
  return p;
}

PlanBuffers& plan_buffers() {
  // Reused across calls on the same thread: decode calls this hundreds of times per token.
  thread_local PlanBuffers b;
  return b;
}

group_impl::RowsFn rows_fn(const Choice& c) {
  if (c.q8)
    return c.isa == Isa::Avx512 ? group_impl::rows_q8_avx512
           : c.isa == Isa::Avx2 ? group_impl::rows_q8_avx2
                                : rows_scalar_q8;
  return c.isa == Isa::Avx512 ? group_impl::rows_avx512 : c.isa == Isa::Avx2 ? group_impl::rows_avx2 : rows_scalar;
}
group_impl::DequantFn dequant_fn(const Choice& c) {
  return c.isa == Isa::Avx512 ? group_impl::dequant_avx512
         : c.isa == Isa::Avx2 ? group_impl::dequant_avx2
                              : dequant_scalar;
}

int default_threads(const GroupQuantView& w) { return decode_threads(w.rows * w.words_per_row() * 4); }

}  // namespace

namespace group_impl {
float zero_correction(const float* scale, const float* zero, const float* xsum, int64_t n_groups) {
  double c = 0;
  for (int64_t g = 0; g < n_groups; ++g) c += double(scale[g]) * zero[g] * xsum[g];
  return static_cast<float>(c);
}
}  // namespace group_impl

void check_group_view(const GroupQuantView& w) {
  SHRINK_CHECK(w.bits >= 2 && w.bits <= 8, "group kernel: bits must be 2..8, got ", w.bits);
  SHRINK_CHECK(w.rows >= 0 && w.cols > 0 && w.group_len > 0 && w.group_len <= w.cols, "group kernel: bad shape ",
               w.rows, "x", w.cols, " with groups of ", w.group_len);
  SHRINK_CHECK(!w.per_tensor || w.group_len == w.cols, "group kernel: per-tensor scales need one group per row");
  SHRINK_CHECK(w.packed && w.scale, "group kernel: missing codes or scales");
}

void group_dequantize_row(const GroupQuantView& w, int64_t r, float* out) {
  const int64_t pw = w.per_word(), stride = w.param_stride();
  const uint32_t* row = w.packed + r * w.words_per_row();
  for (int64_t c = 0; c < w.cols; ++c) {
    const int64_t g = r * stride + (w.per_tensor ? 0 : c / w.group_len);
    out[c] = w.scale[g] * (level(w, code_at(row, c, w.bits, pw)) - (w.zero ? w.zero[g] : 0.0f));
  }
}

void group_matmul_ref(const GroupQuantView& w, const float* x, float* y, int64_t n) {
  check_group_view(w);
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    group_dequantize_row(w, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double acc = 0;
      for (int64_t c = 0; c < w.cols; ++c) acc += double(row[c]) * x[t * w.cols + c];
      y[t * w.rows + r] = static_cast<float>(acc);
    }
  }
}

bool group_uses_q8(const GroupQuantView& w) { return pick(w).q8; }

void group_round_act(const GroupQuantView& w, const float* x, float* out) {
  if (!group_uses_q8(w)) {
    std::copy(x, x + w.cols, out);
    return;
  }
  const int64_t block_cols = group_impl::kQ8Words * w.per_word();
  for (int64_t c0 = 0; c0 < w.cols; c0 += block_cols) {
    const int64_t c1 = std::min(w.cols, c0 + block_cols);
    const auto [d, id] = q8_scale(x + c0, c1 - c0);
    for (int64_t c = c0; c < c1; ++c) out[c] = d * float(q8_code(x[c], id));
  }
}

const char* group_gemv_path(const GroupQuantView& w) {
  const Choice c = pick(w);
  if (c.q8) return c.isa == Isa::Avx512 ? "avx512vnni q8" : c.isa == Isa::Avx2 ? "avx2 q8" : "scalar q8";
  return c.isa == Isa::Avx512 ? "avx512" : c.isa == Isa::Avx2 ? "avx2" : "scalar";
}

void group_gemv_threads(const GroupQuantView& w, const float* x, float* y, int threads) {
  check_group_view(w);
  if (w.rows == 0) return;
  const Choice c = pick(w);
  const Plan p = make_plan(w, x, 1, c, false, plan_buffers());
  const group_impl::RowsFn fn = rows_fn(c);
  for_row_slabs(w.rows, threads, [&](int64_t r0, int64_t r1) { fn(p, r0, r1, y, w.rows); });
}

void group_gemv(const GroupQuantView& w, const float* x, float* y) { group_gemv_threads(w, x, y, default_threads(w)); }

void group_matmul_codes(const GroupQuantView& w, const float* x, float* y, int64_t n) {
  check_group_view(w);
  if (w.rows == 0 || n <= 0) return;
  const Choice c = pick(w);
  const Plan p = make_plan(w, x, n, c, false, plan_buffers());
  const group_impl::RowsFn fn = rows_fn(c);
  // The row kernels run every input against a few rows at a time, so each
  // row's codes are read from memory once and from L1 for the other inputs.
  for_row_slabs(w.rows, default_threads(w), [&](int64_t r0, int64_t r1) { fn(p, r0, r1, y, w.rows); });
}

void group_matmul_dequant(const GroupQuantView& w, const float* x, float* y, int64_t n) {
  check_group_view(w);
  if (w.rows == 0 || n <= 0) return;
  Choice c = pick(w);
  if (!f32_simd_shape(w)) c = Choice{};  // the q8 shapes are f32 shapes; others widen in scalar
  const Plan p = make_plan(w, x, n, c, true, plan_buffers());
  const group_impl::DequantFn deq = dequant_fn(c);
  // Panels of rows widened in lane order (matching p.xa), then sgemm (row_slabs.h).
  panel_sgemm(n, w.rows, p.xa_cols, p.xa, y, [&](int64_t r0, int64_t nr, float* wf) { deq(p, r0, r0 + nr, wf); });
}

// bench/group_gemv_bench.cpp BM_GroupMatmul, int4g128 4096 x 4096 (CPU time
// on a loaded 2-core machine): f32-activation codes vs dequant + sgemm 3.1 vs
// 4.8 ms at n = 2, 6.6 vs 6.6 at n = 8, 11.8 vs 14.8 at n = 16, 22.4 vs 18.0
// at n = 32; the int8-activation codes stay cheapest (4.8 ms at n = 16).
int64_t group_matmul_dequant_min_n(const GroupQuantView&) { return 16; }

bool group_matmul_with(const char* isa_name, GroupKernel k, const GroupQuantView& w, const float* x, float* y,
                       int64_t n) {
  check_group_view(w);
  const std::string_view name(isa_name);
  Choice c;
  c.isa = name == "avx512" ? Isa::Avx512 : name == "avx2" ? Isa::Avx2 : Isa::Scalar;
  SHRINK_CHECK(c.isa != Isa::Scalar || name == "scalar", "group kernel: unknown ISA '", name, "'");
  c.q8 = k == GroupKernel::Q8;
  c.lanes = lanes_of(c.isa);
  if (c.q8 ? !q8_shape(w) : c.isa != Isa::Scalar && !f32_simd_shape(w)) return false;
  if (!hw_has(c.isa, c.q8, false)) return false;
  const Plan p = make_plan(w, x, n, c, k == GroupKernel::Dequant, plan_buffers());
  if (k != GroupKernel::Dequant) {
    rows_fn(c)(p, 0, w.rows, y, w.rows);
    return true;
  }
  std::vector<float> wf(static_cast<size_t>(w.rows * p.xa_cols));
  dequant_fn(c)(p, 0, w.rows, wf.data());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < w.rows; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < p.xa_cols; ++j) acc += double(wf[r * p.xa_cols + j]) * p.xa[t * p.xa_cols + j];
      y[t * w.rows + r] = static_cast<float>(acc);
    }
  return true;
}

void group_matmul(const GroupQuantView& w, const float* x, float* y, int64_t n) {
  if (n == 1) return group_gemv(w, x, y);
  if (n < group_matmul_dequant_min_n(w)) return group_matmul_codes(w, x, y, n);
  group_matmul_dequant(w, x, y, n);
}

}  // namespace shrink::kernels
