// AVX-512 kernels of the compressed N:M products (kernels/sparse_nm.h) for
// the 50% patterns (M == 2N): 16 stored values of a row cover exactly the 32
// columns [32w, 32w + 32) of their block w. Their indices (16 x 2 or 4 bits)
// are unpacked into a lane vector with one variable shift and an AND, the
// group base M * (i / N) is added, and vpermt2ps picks the 16 matching x
// values out of the two x vectors of those 32 columns. So each block costs a
// load of the values (64 bytes f32 / 32 bytes bf16), a 4- or 8-byte index
// load, ~4 integer ops, one permute and one FMA: far below the DRAM time of
// the bytes it reads, which is what decode waits for.
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation,
// which -Wuninitialized flags wherever such an intrinsic is inlined (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "core/error.h"
#include "kernels/sparse_nm.h"

#define SHRINK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define SHRINK_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,fma"), always_inline)) inline

namespace shrink::kernels {

namespace {

// Rows computed together, each from its own far-apart run of rows (like the
// dense GEMV's rows_in_runs: several DRAM streams in flight; values and
// indices are two streams per row).
constexpr int kRows = 4;
constexpr int kPrefetchBytes = 1024;
constexpr int kTokens = 4;  // tokens per tile in the multi-token kernel

// What the block loop needs of the pattern, in registers.
struct Unpacker {
  __m512i shift, mask, base, sel;
};

template <int B>
SHRINK_AVX512_INLINE Unpacker make_unpacker(int n, int m) {
  alignas(64) int32_t shift[16], base[16], sel[16];
  for (int i = 0; i < 16; ++i) {
    shift[i] = B * (i % (32 / B));  // bit offset of value i within its 32-bit word
    sel[i] = i / (32 / B);          // which word (B == 4: two words per block)
    base[i] = m * (i / n);          // first column of value i's group within the 32-column window
  }
  return {_mm512_load_si512(shift), _mm512_set1_epi32((1 << B) - 1), _mm512_load_si512(base),
          _mm512_load_si512(sel)};
}

// Window positions (0..31) of the 16 values of block w.
template <int B>
SHRINK_AVX512_INLINE __m512i positions(const Unpacker& u, const uint32_t* idx, int64_t w) {
  __m512i words;
  if constexpr (B == 2) {
    words = _mm512_set1_epi32(static_cast<int>(idx[w]));
  } else {
    const __m128i two = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + 2 * w));
    words = _mm512_permutexvar_epi32(u.sel, _mm512_castsi128_si512(two));
  }
  return _mm512_add_epi32(u.base, _mm512_and_si512(_mm512_srlv_epi32(words, u.shift), u.mask));
}

// The 16 values of block w as f32.
template <DType T>
SHRINK_AVX512_INLINE __m512 values16(const void* v, int64_t w) {
  if constexpr (T == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(v) + 16 * w);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(v) + 16 * w));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <DType T>
constexpr int64_t kValueBytes = T == DType::F32 ? 4 : 2;

// y[i * ystride] for R rows: row i's values at v + i * vstride values, indices at idx + i * istride words.
template <DType T, int B, int R>
SHRINK_AVX512 void dot_rows(const Unpacker& u, const char* v, int64_t vstride, const uint32_t* idx, int64_t istride,
                            int64_t blocks, const float* xp, float* y, int64_t ystride) {
  __m512 acc0[R], acc1[R];
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  int64_t w = 0;
  for (; w + 2 <= blocks; w += 2) {
    const __m512 xa = _mm512_loadu_ps(xp + 32 * w), xb = _mm512_loadu_ps(xp + 32 * w + 16);
    const __m512 xc = _mm512_loadu_ps(xp + 32 * w + 32), xd = _mm512_loadu_ps(xp + 32 * w + 48);
    for (int i = 0; i < R; ++i) {
      const char* vi = v + i * vstride * kValueBytes<T>;
      const uint32_t* ii = idx + i * istride;
      _mm_prefetch(vi + 16 * w * kValueBytes<T> + kPrefetchBytes, _MM_HINT_T0);
      if constexpr (T == DType::F32) _mm_prefetch(vi + 16 * w * 4 + kPrefetchBytes + 64, _MM_HINT_T0);
      acc0[i] = _mm512_fmadd_ps(values16<T>(vi, w), _mm512_permutex2var_ps(xa, positions<B>(u, ii, w), xb), acc0[i]);
      acc1[i] =
          _mm512_fmadd_ps(values16<T>(vi, w + 1), _mm512_permutex2var_ps(xc, positions<B>(u, ii, w + 1), xd), acc1[i]);
    }
  }
  if (w < blocks) {
    const __m512 xa = _mm512_loadu_ps(xp + 32 * w), xb = _mm512_loadu_ps(xp + 32 * w + 16);
    for (int i = 0; i < R; ++i) {
      const char* vi = v + i * vstride * kValueBytes<T>;
      acc0[i] = _mm512_fmadd_ps(values16<T>(vi, w),
                                _mm512_permutex2var_ps(xa, positions<B>(u, idx + i * istride, w), xb), acc0[i]);
    }
  }
  for (int i = 0; i < R; ++i) y[i * ystride] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[i], acc1[i]));
}

template <DType T, int B>
SHRINK_AVX512 void rows_typed(const NmShape& s, const void* values, const uint32_t* idx, const float* xp, float* y) {
  const Unpacker u = make_unpacker<B>(s.n, s.m);
  const int64_t vpr = s.values_per_row(), ipr = s.index_words_per_row(), blocks = vpr / 16;
  const char* v = static_cast<const char*>(values);
  const int64_t run = s.rows / kRows;
  for (int64_t r = 0; r < run; ++r)
    dot_rows<T, B, kRows>(u, v + r * vpr * kValueBytes<T>, run * vpr, idx + r * ipr, run * ipr, blocks, xp, y + r,
                          run);
  for (int64_t r = run * kRows; r < s.rows; ++r)
    dot_rows<T, B, 1>(u, v + r * vpr * kValueBytes<T>, 0, idx + r * ipr, 0, blocks, xp, y + r, 0);
}

// One row against NT tokens: y[t * ldy] for t < NT (x token stride pc).
template <DType T, int B, int NT>
SHRINK_AVX512 void row_tokens(const Unpacker& u, const char* v, const uint32_t* idx, int64_t blocks, const float* xp,
                              int64_t pc, float* y, int64_t ldy) {
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t w = 0; w < blocks; ++w) {
    const __m512 val = values16<T>(v, w);
    const __m512i pos = positions<B>(u, idx, w);
    for (int t = 0; t < NT; ++t) {
      const float* x = xp + t * pc + 32 * w;
      acc[t] = _mm512_fmadd_ps(val, _mm512_permutex2var_ps(_mm512_loadu_ps(x), pos, _mm512_loadu_ps(x + 16)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) y[t * ldy] = _mm512_reduce_add_ps(acc[t]);
}

template <DType T, int B>
SHRINK_AVX512 void tokens_typed(const NmShape& s, const void* values, const uint32_t* idx, const float* xp,
                                int64_t ntok, float* y, int64_t ldy) {
  const Unpacker u = make_unpacker<B>(s.n, s.m);
  const int64_t vpr = s.values_per_row(), ipr = s.index_words_per_row(), blocks = vpr / 16, pc = nm_padded_cols(s);
  const char* v = static_cast<const char*>(values);
  for (int64_t r = 0; r < s.rows; ++r) {
    const char* vr = v + r * vpr * kValueBytes<T>;
    int64_t t = 0;
    for (; t + kTokens <= ntok; t += kTokens)
      row_tokens<T, B, kTokens>(u, vr, idx + r * ipr, blocks, xp + t * pc, pc, y + t * ldy + r, ldy);
    for (; t < ntok; ++t) row_tokens<T, B, 1>(u, vr, idx + r * ipr, blocks, xp + t * pc, pc, y + t * ldy + r, ldy);
  }
}

}  // namespace

void nm_rows_avx512(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* xp,
                    float* y) {
  SHRINK_CHECK(s.half_pattern(), "nm_rows_avx512: ", s.n, ":", s.m, " is not a 50% pattern");
  const bool f32 = vtype == DType::F32, b2 = s.index_bits() == 2;
  SHRINK_CHECK(f32 || vtype == DType::BF16, "nm_rows_avx512: values must be f32 or bf16");
  if (f32) return b2 ? rows_typed<DType::F32, 2>(s, values, idx, xp, y) : rows_typed<DType::F32, 4>(s, values, idx, xp, y);
  return b2 ? rows_typed<DType::BF16, 2>(s, values, idx, xp, y) : rows_typed<DType::BF16, 4>(s, values, idx, xp, y);
}

void nm_tokens_avx512(const NmShape& s, DType vtype, const void* values, const uint32_t* idx, const float* xp,
                      int64_t ntok, float* y, int64_t ldy) {
  SHRINK_CHECK(s.half_pattern(), "nm_tokens_avx512: ", s.n, ":", s.m, " is not a 50% pattern");
  const bool f32 = vtype == DType::F32, b2 = s.index_bits() == 2;
  SHRINK_CHECK(f32 || vtype == DType::BF16, "nm_tokens_avx512: values must be f32 or bf16");
  if (f32)
    return b2 ? tokens_typed<DType::F32, 2>(s, values, idx, xp, ntok, y, ldy)
              : tokens_typed<DType::F32, 4>(s, values, idx, xp, ntok, y, ldy);
  return b2 ? tokens_typed<DType::BF16, 2>(s, values, idx, xp, ntok, y, ldy)
            : tokens_typed<DType::BF16, 4>(s, values, idx, xp, ntok, y, ldy);
}

}  // namespace shrink::kernels
