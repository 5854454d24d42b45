// Causal attention over an int8 KV cache, and the quantizer that fills it.
//
// Format: every key and value vector of one KV head at one position (head_dim
// values) is stored as int8 codes c and one f32 scale d, symmetric:
// d = max|x| / 127, c = round_half_even(x / d) in [-127, 127] (d = 0 and c = 0
// for an all-zero vector); x ~ d * c. One scale per (position, KV head), i.e.
// 1 + 4/head_dim bytes per value instead of 4 (llama.cpp's q8_0 cache type
// keeps an f16 scale per 32 values instead: 1 + 2/32).
//
// Storage is KV-head-major, as in the KV cache: head h's codes for positions
// 0 .. cap-1 are one contiguous [cap x head_dim] panel, so a decode step
// streams each head's keys and values front to back (position-major rows
// of n_kv_heads * head_dim bytes, read head by head, measured 2x slower at
// 2048 positions: the prefetchers do not follow the short strided runs).
//
// Decode rows (n_tokens < 8) compute the scores in integers: the query row is
// rounded to int16 codes e with one scale d_q = max|q| / qmax (qmax = 32767,
// less for head_dim > 516 so that int32 sums cannot overflow; relative error
// <= 1.5e-5 of max|q|, far below the int8 keys' 0.4%), and
// score_j = (sum_i e_i c_ji) * d_q * d_j / sqrt(head_dim), the integer sum exact
// (vpmaddwd: 32 products per instruction on AVX-512, 16 on AVX2), so every
// ISA gives the scalar reference's sums bit for bit. The values are widened to
// f32: out = sum_j (p_j d_j) c_j. Prefill (n_tokens >= 8) dequantizes each KV
// head's panel once into f32 and uses the two-GEMM path of kernels::attention
// on the queries rounded to the same int16 grid (d_q * e), so both paths
// compute the same function up to f32 rounding. AVX-512 / AVX2 paths are
// chosen at run time, each tested against the scalar reference.
// Model-agnostic: it sees panels, not layers.
#pragma once
#include <cstdint>

namespace shrink::kernels {

// Quantizes `rows` vectors of `cols` floats (x rows contiguous) to codes
// q [rows x cols] and scales d [rows], as described above.
void quantize_rows_q8(const float* x, int8_t* q, float* d, int64_t rows, int64_t cols);

// Causal multi-head attention with grouped KV heads over int8 keys/values.
//   q       [n_tokens x n_heads x head_dim], queries of positions pos0 .. pos0+n_tokens-1
//   k, v    [n_kv_heads x cap x head_dim] int8 codes; positions 0 .. pos0+n_tokens-1 are used
//   ks, vs  [n_kv_heads x cap] their scales
//   out     [n_tokens x n_heads x head_dim]
void attention_q8(const float* q, const int8_t* k, const float* ks, const int8_t* v, const float* vs, float* out,
                  int64_t n_tokens, int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t cap);
// Scalar reference (exact integer scores, double value sums, row by row, no GEMM).
void attention_q8_ref(const float* q, const int8_t* k, const float* ks, const int8_t* v, const float* vs, float* out,
                      int64_t n_tokens, int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                      int64_t cap);
// Which implementation attention_q8 uses on this CPU: "avx512", "avx2" or "scalar".
const char* attention_q8_isa();

// The per-ISA primitives (internal; exposed for the tests). Strides are in
// elements: row j of k/v starts at j * kv_stride, its scale at j * s_stride.
namespace q8attn {
// Rounds q[0..n) to int16 codes e (e[n..pad) = 0 up to the next multiple of
// 32) and returns d_q (see above); 0 for an all-zero q.
float quantize_query(const float* q, int64_t n, int16_t* e);
struct Kernels {
  const char* name;
  // scores[j] = (dot(e, k_j) as an exact integer) * dq * ks[j] * scale for j < len (e, dq: quantize_query)
  void (*scores)(const int16_t* e, float dq, const int8_t* k, const float* ks, int64_t len, int64_t kv_stride,
                 int64_t s_stride, int64_t head_dim, float scale, float* scores);
  // out[d] = sum_j p[j] * vs[j] * v_j[d] for d < head_dim
  void (*accum)(const float* p, const int8_t* v, const float* vs, int64_t len, int64_t kv_stride, int64_t s_stride,
                int64_t head_dim, float* out);
  // x[r * cols + c] = d[r] * q[r * cols + c] (contiguous rows; prefill widens the cache with it)
  void (*dequant)(const int8_t* q, const float* d, int64_t rows, int64_t cols, float* x);
};
const Kernels& scalar();
const Kernels& avx2();    // call only when cpu_avx2()
const Kernels& avx512();  // call only when cpu_avx512()
bool cpu_avx2();          // AVX2 + FMA
bool cpu_avx512();        // AVX-512 F + BW + VL
const Kernels& best();    // what attention_q8 dispatches to
// attention_q8 with the given primitives (the tests run it for every ISA).
void attention_with(const Kernels& kern, const float* q, const int8_t* k, const float* ks, const int8_t* v,
                    const float* vs, float* out, int64_t n_tokens, int64_t pos0, int64_t n_heads, int64_t n_kv_heads,
                    int64_t head_dim, int64_t cap);
}  // namespace q8attn

}  // namespace shrink::kernels
