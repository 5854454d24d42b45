// Scale searches shared by the ggml block quantizers. Each is our own rewrite of
// the function of the same name in ggml/src/ggml-quants.c (ggml-org/llama.cpp,
// checked at 0ad4a86) and must stay bit-exact with it: every float expression
// keeps ggml's operand order and types (no reassociation, no FMA contraction --
// this code is built without -ffast-math and for baseline x86-64, as is ggml's
// libggml-base), because one flipped rounding changes the bytes written.
// tests/quant_blocks_test.cpp checks the results against llama.cpp's output.
#pragma once
#include <cstdint>

namespace shrink::kernels::qsearch {

// ggml's nearest_int: round half to even through the 1.5*2^23 trick. Valid for
// |v| < 2^22; outside that range it wraps exactly as ggml's does.
int nearest_int(float v);

// ggml's MAX/MIN macros, kept as such: for equal operands (+0 vs -0) they pick
// a specific one, which std::max/std::min do not match.
inline float gmax(float a, float b) { return a > b ? a : b; }
inline float gmin(float a, float b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }
inline int imin(int a, int b) { return a < b ? a : b; }

// Symmetric codes L[i] in [0, 2*nmax) for x[i] ~ scale * (L[i] - nmax); returns the
// scale. rmse_type 0: plain rounding of the largest-magnitude value to -nmax;
// otherwise a least-squares fit over 19 candidate scales, weighted by qw (or by
// x^2, 1, |x|, sqrt|x| for rmse_type 1..4 without qw). make_qx_quants.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw);

// Q3_K's symmetric search with x^2 weights and coordinate-descent refinement of
// single codes (do_rmse). Codes in [0, 2*nmax). make_q3_quants.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse);

// Affine codes L[i] in [0, nmax] for x[i] ~ scale * L[i] - *the_min, with min <= 0
// forced; tries nstep+1 scales (nmax + rmin + rdelta*k)/(max - min) and keeps the
// best weighted (|.| if use_mad, else squared) error. weights == nullptr means x^2
// weights. make_qkx2_quants (always given weights) and make_qkx3_quants (nullable)
// are otherwise the same function in ggml.
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                      uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);

// Non-negative codes L[i] in [0, nmax] for the non-negative x[i] (sub-block scales
// or mins) under weights qw, with a 9-point scale search and coordinate descent.
// make_qp_quants.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* qw);

}  // namespace shrink::kernels::qsearch
