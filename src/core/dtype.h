// Element types of tensors: dense floats and ints, and GGUF block-quantized
// types. Block types store `block_elems` values in `block_bytes` bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shrink {

// Block types after F64 are ggml's (ggml-common.h); shrink reads all of them
// (dequantizing to f32) and can write all of them: kernels/quant_blocks.h and
// quant_kblocks.h quantize bit-exactly like llama.cpp's ggml_quantize_chunk, with
// or without an importance vector (imatrix). New entries go at the end (IQ4_NL is
// ggml type 20; the enum order is not ggml's).
enum class DType : uint8_t {
  F32, F16, BF16, I8, I16, I32, I64, F64,
  Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL,
};

struct DTypeTraits {
  std::string_view name;
  int64_t block_elems;  // 1 for dense types
  int64_t block_bytes;  // bytes per block (= element size for dense types)
};

const DTypeTraits& dtype_traits(DType t);
inline std::string_view dtype_name(DType t) { return dtype_traits(t).name; }
inline bool is_block_quantized(DType t) { return dtype_traits(t).block_elems > 1; }
// Bytes used by `n` elements; n must be a multiple of the block size.
int64_t dtype_bytes(DType t, int64_t n);
// Parses "f32", "F16", "bf16", ... (case-insensitive); throws on unknown names.
DType parse_dtype(std::string_view name);

// IEEE half and bfloat16 conversions (round-to-nearest-even on the way down).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f);

}  // namespace shrink
