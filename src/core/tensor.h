// Tensor: a typed, shaped view of memory that may own it (heap) or share it
// (an mmap'd file). Shape is row-major, outermost dimension first; a weight
// matrix of a Linear layer is {out_features, in_features}.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace shrink {

struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  void* data = nullptr;
  std::shared_ptr<void> storage;  // keeps `data` alive (heap buffer or mapped file)

  int64_t numel() const;
  int64_t nbytes() const { return dtype_bytes(dtype, numel()); }
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
  int ndim() const { return static_cast<int>(shape.size()); }
  // Product of all dimensions but the last, and the last: a 2-D view.
  int64_t rows() const { return shape.empty() ? 1 : numel() / shape.back(); }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  bool empty() const { return data == nullptr; }

  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }
  float* f32() const;  // checks dtype == F32

  // A new 64-byte aligned heap tensor (contents uninitialised / zeroed).
  static Tensor alloc(DType dtype, std::vector<int64_t> shape);
  static Tensor zeros(DType dtype, std::vector<int64_t> shape);
  // A tensor over memory owned by `owner` (no copy).
  static Tensor view(DType dtype, std::vector<int64_t> shape, void* data, std::shared_ptr<void> owner);
  // A deep copy converted to `dtype` (dense types only, or dequantizing a block type to F32).
  Tensor to(DType target) const;
  Tensor clone() const { return to(dtype); }
};

std::string shape_str(const std::vector<int64_t>& shape);

// Converts `n` values of dense or block type `src_type` to f32.
void convert_to_f32(DType src_type, const void* src, float* dst, int64_t n);
// Converts `n` f32 values to dense type `dst_type` (F32, F16, BF16).
void convert_from_f32(DType dst_type, const float* src, void* dst, int64_t n);
// True when every value of a floating-point tensor is finite.
bool all_finite(const Tensor& t);

}  // namespace shrink
