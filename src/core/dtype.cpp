#include "core/dtype.h"

#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"

namespace shrink {

namespace {
constexpr std::array<DTypeTraits, 19> kTraits = {{
    {"f32", 1, 4},
    {"f16", 1, 2},
    {"bf16", 1, 2},
    {"i8", 1, 1},
    {"i16", 1, 2},
    {"i32", 1, 4},
    {"i64", 1, 8},
    {"f64", 1, 8},
    {"q8_0", 32, 34},  // ggml block_q8_0: f16 scale + 32 x int8
    {"q4_0", 32, 18},  // ggml block_q4_0: f16 scale + 16 bytes of nibbles
    {"q4_1", 32, 20},  // + f16 min
    {"q5_0", 32, 22},  // f16 scale + 4 bytes of 5th bits + 16 bytes of nibbles
    {"q5_1", 32, 24},  // + f16 min
    // K-quants: super-blocks of 256 (QK_K) with sub-block scales packed in the block.
    {"q2_k", 256, 84},
    {"q3_k", 256, 110},
    {"q4_k", 256, 144},
    {"q5_k", 256, 176},
    {"q6_k", 256, 210},
    {"iq4_nl", 32, 18},  // ggml block_iq4_nl: f16 scale + 16 bytes of nibbles indexing a 16-value table
}};
static_assert(kTraits.size() == static_cast<size_t>(DType::IQ4_NL) + 1, "one traits row per DType");
}  // namespace

const DTypeTraits& dtype_traits(DType t) { return kTraits.at(static_cast<size_t>(t)); }

int64_t dtype_bytes(DType t, int64_t n) {
  const auto& tr = dtype_traits(t);
  SHRINK_CHECK(n % tr.block_elems == 0, "tensor of ", n, " elements is not a whole number of ",
               tr.name, " blocks (", tr.block_elems, ")");
  return n / tr.block_elems * tr.block_bytes;
}

DType parse_dtype(std::string_view name) {
  std::string lower(name);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (size_t i = 0; i < kTraits.size(); ++i)
    if (kTraits[i].name == lower) return static_cast<DType>(i);
  fail("unknown dtype '", name, "' (expected f32, f16, bf16, q8_0, q4_0, ...)");
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000) return static_cast<uint16_t>(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
  if (absx >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (absx < 0x38800000) {  // subnormal or zero in half
    // value * 2^24 rounded to nearest even gives the subnormal mantissa
    float a;
    std::memcpy(&a, &absx, 4);
    const float scaled = a * 16777216.0f;  // 2^24
    const uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  const uint32_t exp = ((absx >> 23) - 127 + 15);
  uint32_t mant = absx & 0x7fffff;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // round to nearest even
  return static_cast<uint16_t>(sign | h);
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace shrink
