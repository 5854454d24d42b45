// GGUF v3 (and v2) files at the format level: typed metadata values, the
// ordered key/value list, tensor infos and the aligned data section. Reading
// is zero-copy over a MappedFile and bounds-checks every count, length, dim
// and byte range; writing is atomic (AtomicWriter). What the tensors mean (a
// llama, a gpt2, a tokenizer) is gguf_model.cpp's business, not this module's.
//
// Spec: ggml docs/gguf.md ("GGUF" — File Structure, Standardized key-value
// pairs). Layout, all little-endian:
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count
//   kv_count x { string key, u32 value_type, value }
//   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   zero padding to general.alignment (default 32), then the data section;
//   each tensor's offset is relative to the data section and aligned.
//   string = u64 length + bytes (no NUL); array = u32 elem_type, u64 count, elems.
// v2 has the same layout as v3 (v3 only added big-endian files, which we reject);
// v1 used 32-bit counts and is not supported.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/file.h"

namespace shrink {

// Metadata value types; the numbers are the on-disk ids.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12
};
const char* gguf_type_name(GgufType t);

struct GgufValue;

// An array value: every element has type `elem` (which may itself be Array).
struct GgufArray {
  GgufType elem = GgufType::U8;
  std::vector<GgufValue> items;
  bool operator==(const GgufArray&) const;
};

// One metadata value. The variant's alternative index equals the GgufType id.
struct GgufValue {
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                               GgufArray, uint64_t, int64_t, double>;
  Storage v;

  GgufValue() : v(std::in_place_index<0>, uint8_t{0}) {}
  GgufValue(uint8_t x) : v(std::in_place_index<0>, x) {}
  GgufValue(int8_t x) : v(std::in_place_index<1>, x) {}
  GgufValue(uint16_t x) : v(std::in_place_index<2>, x) {}
  GgufValue(int16_t x) : v(std::in_place_index<3>, x) {}
  GgufValue(uint32_t x) : v(std::in_place_index<4>, x) {}
  GgufValue(int32_t x) : v(std::in_place_index<5>, x) {}
  GgufValue(float x) : v(std::in_place_index<6>, x) {}
  GgufValue(bool x) : v(std::in_place_index<7>, x) {}
  GgufValue(std::string x) : v(std::in_place_index<8>, std::move(x)) {}
  GgufValue(const char* x) : v(std::in_place_index<8>, x) {}  // not bool
  GgufValue(GgufArray x) : v(std::in_place_index<9>, std::move(x)) {}
  GgufValue(uint64_t x) : v(std::in_place_index<10>, x) {}
  GgufValue(int64_t x) : v(std::in_place_index<11>, x) {}
  GgufValue(double x) : v(std::in_place_index<12>, x) {}

  GgufType type() const { return static_cast<GgufType>(v.index()); }
  bool is_int() const;  // any of the eight integer types
  // Conversions that throw shrink::Error (prefixed with `what`) on a type or range mismatch.
  int64_t as_int(const std::string& what) const;        // any integer type that fits int64
  double as_float(const std::string& what) const;       // f32 or f64
  bool as_bool(const std::string& what) const;
  const std::string& as_string(const std::string& what) const;
  const GgufArray& as_array(const std::string& what) const;

  bool operator==(const GgufValue& o) const { return v == o.v; }
};

// Array builders (elements take the array's element type).
GgufValue gguf_array(GgufType elem, std::vector<GgufValue> items);  // checks every item's type
GgufValue gguf_strings(const std::vector<std::string>& xs);
GgufValue gguf_f32s(const std::vector<float>& xs);
GgufValue gguf_i32s(const std::vector<int32_t>& xs);

struct GgufKV {
  std::string key;
  GgufValue value;
};

// ggml tensor types (ggml.h enum ggml_type; ids are on-disk values).
namespace ggml_type {
constexpr uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10,
                   Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, I8 = 24, I16 = 25, I32 = 26, I64 = 27,
                   F64 = 28, BF16 = 30, IQ4_NL = 20;
}
// Block size (elements) and bytes per block of a ggml type; false for unknown ids.
bool ggml_type_size(uint32_t type, int64_t* block_elems, int64_t* block_bytes);
std::string ggml_type_name(uint32_t type);  // "Q4_K", or "type 99" when unknown
// shrink DTypes that GGUF stores directly. `to` returns false when there is none.
bool ggml_to_dtype(uint32_t type, DType* to);
bool dtype_to_ggml(DType d, uint32_t* to);

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // GGUF order: ne[0] is the innermost (contiguous) dimension
  uint32_t type = 0;         // ggml type id
  uint64_t offset = 0;       // relative to the data section
  uint64_t nbytes = 0;       // derived from ne and type
  uint64_t numel() const;
};

// A parsed GGUF file. Tensor bytes stay in the mapping.
struct GgufFile {
  std::string path;
  uint32_t version = 3;
  uint32_t alignment = 32;
  uint64_t data_offset = 0;  // absolute file offset of the data section
  std::vector<GgufKV> kv;    // in file order
  std::vector<GgufTensorInfo> tensors;  // in file order
  std::shared_ptr<MappedFile> file;

  const GgufValue* find(const std::string& key) const;
  const GgufValue& get(const std::string& key) const;  // throws naming the file and key
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // Pointer to a tensor's bytes (valid while `file` lives); the range was checked when parsing.
  uint8_t* tensor_data(const GgufTensorInfo& t) const { return file->data() + data_offset + t.offset; }
};

// Parses a GGUF file; throws shrink::Error ("<path>: <problem>") on anything malformed.
GgufFile read_gguf(const std::string& path);

// A tensor to write: its bytes must be exactly nbytes(ne, type).
struct GgufTensorOut {
  std::string name;
  std::vector<uint64_t> ne;  // GGUF order
  uint32_t type = 0;
  const void* data = nullptr;
};

// Writes a GGUF v3 file atomically. The alignment is general.alignment when
// `kv` holds it (it must be a u32 power of two), else 32. Keys must be unique,
// tensor names unique and shorter than 64 bytes (ggml's GGML_MAX_NAME).
void write_gguf(const std::string& path, const std::vector<GgufKV>& kv, const std::vector<GgufTensorOut>& tensors);

}  // namespace shrink
