#include "core/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_kblocks.h"

namespace shrink {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

float* Tensor::f32() const {
  SHRINK_CHECK(dtype == DType::F32, "expected an f32 tensor, got ", dtype_name(dtype));
  return static_cast<float*>(data);
}

Tensor Tensor::alloc(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  for (auto d : t.shape) SHRINK_CHECK(d >= 0, "negative dimension in shape ", shape_str(t.shape));
  const size_t bytes = static_cast<size_t>(t.nbytes());
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
  SHRINK_CHECK(p || rounded == 0, "out of memory allocating ", bytes, " bytes");
  t.storage = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data = p;
  return t;
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor t = alloc(dtype, std::move(shape));
  if (t.data) std::memset(t.data, 0, static_cast<size_t>(t.nbytes()));
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape, void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = data;
  t.storage = std::move(owner);
  return t;
}

Tensor Tensor::to(DType target) const {
  Tensor out = alloc(target, shape);
  if (target == dtype) {
    std::memcpy(out.data, data, static_cast<size_t>(nbytes()));
  } else if (target == DType::F32) {
    convert_to_f32(dtype, data, out.f32(), numel());
  } else if (dtype == DType::F32) {
    convert_from_f32(target, static_cast<const float*>(data), out.data, numel());
  } else {
    Tensor tmp = to(DType::F32);
    return tmp.to(target);
  }
  return out;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void convert_to_f32(DType src_type, const void* src, float* dst, int64_t n) {
  switch (src_type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::F16: {
      auto s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      auto s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F64: {
      auto s = static_cast<const double*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::Q8_0: kernels::dequantize_q8_0(src, dst, n); return;
    case DType::Q4_0: kernels::dequantize_q4_0(src, dst, n); return;
    case DType::Q4_1: kernels::dequantize_q4_1(src, dst, n); return;
    case DType::Q5_0: kernels::dequantize_q5_0(src, dst, n); return;
    case DType::Q5_1: kernels::dequantize_q5_1(src, dst, n); return;
    case DType::Q2_K: kernels::dequantize_q2_k(src, dst, n); return;
    case DType::Q3_K: kernels::dequantize_q3_k(src, dst, n); return;
    case DType::Q4_K: kernels::dequantize_q4_k(src, dst, n); return;
    case DType::Q5_K: kernels::dequantize_q5_k(src, dst, n); return;
    case DType::Q6_K: kernels::dequantize_q6_k(src, dst, n); return;
    case DType::IQ4_NL: kernels::dequantize_iq4_nl(src, dst, n); return;
    default: fail("cannot convert ", dtype_name(src_type), " to f32");
  }
}

void convert_from_f32(DType dst_type, const float* src, void* dst, int64_t n) {
  switch (dst_type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::F16: {
      auto d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::BF16: {
      auto d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    default:
      // Block types: ggml's reference quantizers (round to nearest, no importance).
      SHRINK_CHECK(kernels::has_block_quantizer(dst_type), "cannot convert f32 to ", dtype_name(dst_type));
      kernels::quantize_row(dst_type, src, dst, n);
  }
}

bool all_finite(const Tensor& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16) return true;
  if (t.dtype == DType::F32) {
    const float* p = t.f32();
    const int64_t n = t.numel();
    int bad = 0;
#pragma omp parallel for reduction(| : bad)
    for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(p[i]);
    return !bad;
  }
  // 16-bit floats: exponent all ones means Inf or NaN.
  const auto* p = t.ptr<const uint16_t>();
  const uint16_t mask = t.dtype == DType::F16 ? 0x7c00 : 0x7f80;
  for (int64_t i = 0; i < t.numel(); ++i)
    if ((p[i] & mask) == mask) return false;
  return true;
}

}  // namespace shrink
