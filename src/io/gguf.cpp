// GGUF v2/v3 parsing and writing (see gguf.h and ggml docs/gguf.md).
#include "io/gguf.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <set>

#include "core/error.h"

namespace shrink {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kMaxKeyLen = 65535;   // the spec's limit for keys
constexpr uint64_t kMaxNameLen = 4096;   // tensor names (ggml itself allows < 64)
constexpr uint64_t kMaxStringLen = uint64_t{1} << 30;
constexpr uint64_t kMaxArrayLen = uint64_t{1} << 24;  // each element costs ~40 bytes in memory
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr size_t kGgmlMaxName = 64;  // GGML_MAX_NAME, including the NUL

struct TypeRow {
  uint32_t id;
  const char* name;
  int64_t block_elems, block_bytes;
};
// Block sizes from ggml-common.h (QK_K = 256); the ids are ggml.h's enum ggml_type.
constexpr TypeRow kTypes[] = {
    {0, "F32", 1, 4},       {1, "F16", 1, 2},        {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},     {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},  {11, "Q3_K", 256, 110},  {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292},  {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50}, {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82}, {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},       {25, "I16", 1, 2},
    {26, "I32", 1, 4},      {27, "I64", 1, 8},       {28, "F64", 1, 8},       {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},     {34, "TQ1_0", 256, 54},  {35, "TQ2_0", 256, 66},  {39, "MXFP4", 32, 17},
};

const TypeRow* type_row(uint32_t id) {
  for (const auto& r : kTypes)
    if (r.id == id) return &r;
  return nullptr;
}

struct DTypeMap {
  DType dtype;
  uint32_t ggml;
};
constexpr DTypeMap kDTypeMap[] = {
    {DType::F32, ggml_type::F32},   {DType::F16, ggml_type::F16}, {DType::BF16, ggml_type::BF16},
    {DType::Q8_0, ggml_type::Q8_0}, {DType::Q4_0, ggml_type::Q4_0}, {DType::I8, ggml_type::I8},
    {DType::I16, ggml_type::I16},   {DType::I32, ggml_type::I32}, {DType::I64, ggml_type::I64},
    {DType::F64, ggml_type::F64},   {DType::Q4_1, ggml_type::Q4_1}, {DType::Q5_0, ggml_type::Q5_0},
    {DType::Q5_1, ggml_type::Q5_1}, {DType::Q2_K, ggml_type::Q2_K}, {DType::Q3_K, ggml_type::Q3_K},
    {DType::Q4_K, ggml_type::Q4_K}, {DType::Q5_K, ggml_type::Q5_K}, {DType::Q6_K, ggml_type::Q6_K},
    {DType::IQ4_NL, ggml_type::IQ4_NL},
};

uint64_t align_up(uint64_t x, uint64_t a) { return x + (a - x % a) % a; }

bool is_pow2(uint64_t x) { return x && (x & (x - 1)) == 0; }

// Bytes of one tensor, or false when the element count or byte size overflows
// or ne[0] is not a whole number of blocks.
bool tensor_bytes(const std::vector<uint64_t>& ne, uint32_t type, uint64_t* out, std::string* why) {
  int64_t be = 0, bb = 0;
  if (!ggml_type_size(type, &be, &bb)) {
    *why = "unknown tensor type " + std::to_string(type);
    return false;
  }
  uint64_t n = 1;
  for (uint64_t d : ne) {
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(n, d, &n) ||
        n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      *why = "element count overflows";
      return false;
    }
  }
  if (!ne.empty() && ne[0] % static_cast<uint64_t>(be) != 0) {
    *why = "innermost dimension " + std::to_string(ne[0]) + " is not a multiple of the " + ggml_type_name(type) +
           " block size " + std::to_string(be);
    return false;
  }
  if (__builtin_mul_overflow(n / static_cast<uint64_t>(be), static_cast<uint64_t>(bb), out)) {
    *why = "byte size overflows";
    return false;
  }
  return true;
}

// Smallest encoding of one element of `t`, used to bound counts by the bytes left.
uint64_t min_encoded_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::String: case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::Array: return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* const names[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "invalid";
}

bool GgufArray::operator==(const GgufArray& o) const { return elem == o.elem && items == o.items; }

bool GgufValue::is_int() const {
  switch (type()) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

int64_t GgufValue::as_int(const std::string& what) const {
  SHRINK_CHECK(is_int(), what, " is ", gguf_type_name(type()), ", expected an integer");
  if (const auto* u = std::get_if<uint64_t>(&v)) {
    SHRINK_CHECK(*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), what, " = ", *u, " is too large");
    return static_cast<int64_t>(*u);
  }
  return std::visit(
      [](const auto& x) -> int64_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T>) return static_cast<int64_t>(x);
        return 0;
      },
      v);
}

double GgufValue::as_float(const std::string& what) const {
  if (const auto* f = std::get_if<float>(&v)) return *f;
  if (const auto* d = std::get_if<double>(&v)) return *d;
  fail(what, " is ", gguf_type_name(type()), ", expected f32 or f64");
}

bool GgufValue::as_bool(const std::string& what) const {
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  fail(what, " is ", gguf_type_name(type()), ", expected bool");
}

const std::string& GgufValue::as_string(const std::string& what) const {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  fail(what, " is ", gguf_type_name(type()), ", expected string");
}

const GgufArray& GgufValue::as_array(const std::string& what) const {
  if (const auto* a = std::get_if<GgufArray>(&v)) return *a;
  fail(what, " is ", gguf_type_name(type()), ", expected array");
}

GgufValue gguf_array(GgufType elem, std::vector<GgufValue> items) {
  for (const auto& it : items)
    SHRINK_CHECK(it.type() == elem, "GGUF array of ", gguf_type_name(elem), " holds a ", gguf_type_name(it.type()));
  return GgufValue(GgufArray{elem, std::move(items)});
}

GgufValue gguf_strings(const std::vector<std::string>& xs) {
  return GgufValue(GgufArray{GgufType::String, std::vector<GgufValue>(xs.begin(), xs.end())});
}
GgufValue gguf_f32s(const std::vector<float>& xs) {
  return GgufValue(GgufArray{GgufType::F32, std::vector<GgufValue>(xs.begin(), xs.end())});
}
GgufValue gguf_i32s(const std::vector<int32_t>& xs) {
  return GgufValue(GgufArray{GgufType::I32, std::vector<GgufValue>(xs.begin(), xs.end())});
}

bool ggml_type_size(uint32_t type, int64_t* block_elems, int64_t* block_bytes) {
  const TypeRow* r = type_row(type);
  if (!r) return false;
  *block_elems = r->block_elems;
  *block_bytes = r->block_bytes;
  return true;
}

std::string ggml_type_name(uint32_t type) {
  const TypeRow* r = type_row(type);
  return r ? std::string(r->name) : "type " + std::to_string(type);
}

bool ggml_to_dtype(uint32_t type, DType* to) {
  for (const auto& m : kDTypeMap)
    if (m.ggml == type) return *to = m.dtype, true;
  return false;
}

bool dtype_to_ggml(DType d, uint32_t* to) {
  for (const auto& m : kDTypeMap)
    if (m.dtype == d) return *to = m.ggml, true;
  return false;
}

uint64_t GgufTensorInfo::numel() const {
  return std::accumulate(ne.begin(), ne.end(), uint64_t{1}, [](uint64_t a, uint64_t b) { return a * b; });
}

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& e : kv)
    if (e.key == key) return &e.value;
  return nullptr;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  SHRINK_CHECK(v, path, ": metadata key '", key, "' is missing");
  return *v;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

// ---------------------------------------------------------------- reading

namespace {

class Parser {
 public:
  explicit Parser(std::shared_ptr<MappedFile> f) : f_(std::move(f)), r_(f_->data(), f_->size(), f_->path()) {}

  GgufFile parse() {
    GgufFile g;
    g.path = f_->path();
    g.file = f_;
    read_header(g);
    const uint64_t n_tensors = r_.read<uint64_t>();
    const uint64_t n_kv = r_.read<uint64_t>();
    // Every KV takes >= 13 bytes and every tensor info >= 32: bound the counts by the file.
    check(n_kv <= r_.remaining() / 13, "metadata count ", n_kv, " is larger than the file allows");
    check(n_tensors <= r_.remaining() / 32, "tensor count ", n_tensors, " is larger than the file allows");
    read_kvs(g, n_kv);
    read_alignment(g);
    std::set<std::string> names;
    g.tensors.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      g.tensors.push_back(read_tensor_info());
      check(names.insert(g.tensors.back().name).second, "duplicate tensor '", g.tensors.back().name, "'");
    }
    g.data_offset = align_up(r_.pos(), g.alignment);
    check_data_ranges(g);
    return g;
  }

 private:
  template <typename... Args>
  void check(bool ok, const Args&... args) const {
    if (!ok) fail(f_->path(), ": ", args...);
  }

  void read_header(GgufFile& g) {
    check(f_->size() >= 4 && r_.read<uint32_t>() == kMagic, "not a GGUF file (bad magic)");
    const uint32_t v = r_.read<uint32_t>();
    check(v != 0x03000000 && v != 0x02000000, "big-endian GGUF files are not supported");
    check(v == 2 || v == 3, "unsupported GGUF version ", v, " (supported: 2, 3)");
    g.version = v;
  }

  std::string read_string(uint64_t limit, const char* what) {
    const uint64_t n = r_.read<uint64_t>();
    check(n <= limit, what, " length ", n, " exceeds the limit of ", limit, " bytes (at offset ", r_.pos() - 8, ")");
    return r_.read_string(n);
  }

  GgufType read_type(const char* what) {
    const uint32_t t = r_.read<uint32_t>();
    check(valid_type(t), "invalid ", what, " type ", t, " at offset ", r_.pos() - 4);
    return static_cast<GgufType>(t);
  }

  GgufValue read_value(GgufType t, int depth) {
    switch (t) {
      case GgufType::U8: return r_.read<uint8_t>();
      case GgufType::I8: return r_.read<int8_t>();
      case GgufType::U16: return r_.read<uint16_t>();
      case GgufType::I16: return r_.read<int16_t>();
      case GgufType::U32: return r_.read<uint32_t>();
      case GgufType::I32: return r_.read<int32_t>();
      case GgufType::F32: return r_.read<float>();
      case GgufType::Bool: {
        const uint8_t b = r_.read<uint8_t>();
        check(b <= 1, "invalid bool value ", int(b), " at offset ", r_.pos() - 1);
        return b == 1;
      }
      case GgufType::String: return read_string(kMaxStringLen, "string");
      case GgufType::Array: return read_array(depth + 1);
      case GgufType::U64: return r_.read<uint64_t>();
      case GgufType::I64: return r_.read<int64_t>();
      case GgufType::F64: return r_.read<double>();
    }
    fail(f_->path(), ": invalid value type");  // unreachable: types are validated on read
  }

  GgufValue read_array(int depth) {
    check(depth <= kMaxArrayDepth, "arrays nested deeper than ", kMaxArrayDepth, " at offset ", r_.pos());
    GgufArray a;
    a.elem = read_type("array element");
    const uint64_t n = r_.read<uint64_t>();
    check(n <= kMaxArrayLen && n <= r_.remaining() / min_encoded_size(a.elem), "array length ", n,
          " is too large (", r_.remaining(), " bytes left, limit ", kMaxArrayLen, " elements) at offset ",
          r_.pos() - 8);
    a.items.reserve(n);
    for (uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(a.elem, depth));
    return GgufValue(std::move(a));
  }

  void read_kvs(GgufFile& g, uint64_t n) {
    std::set<std::string> keys;
    g.kv.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      std::string key = read_string(kMaxKeyLen, "metadata key");
      check(!key.empty(), "empty metadata key at offset ", r_.pos() - 8);
      check(keys.insert(key).second, "duplicate metadata key '", key, "'");
      const GgufType t = read_type("metadata value");
      g.kv.push_back({std::move(key), read_value(t, 0)});
    }
  }

  void read_alignment(GgufFile& g) {
    const GgufValue* a = g.find("general.alignment");
    if (!a) return;
    check(a->is_int(), "general.alignment is ", gguf_type_name(a->type()), ", expected u32");
    const int64_t v = a->as_int(f_->path() + ": general.alignment");
    check(v > 0 && v <= (int64_t{1} << 30) && is_pow2(static_cast<uint64_t>(v)), "general.alignment ", v,
          " is not a power of two");
    g.alignment = static_cast<uint32_t>(v);
  }

  GgufTensorInfo read_tensor_info() {
    GgufTensorInfo t;
    t.name = read_string(kMaxNameLen, "tensor name");
    const uint32_t n_dims = r_.read<uint32_t>();
    check(n_dims >= 1 && n_dims <= kMaxDims, "tensor '", t.name, "' has ", n_dims, " dimensions (supported: 1..",
          kMaxDims, ")");
    for (uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(r_.read<uint64_t>());
    t.type = r_.read<uint32_t>();
    t.offset = r_.read<uint64_t>();
    std::string why;
    check(tensor_bytes(t.ne, t.type, &t.nbytes, &why), "tensor '", t.name, "': ", why);
    return t;
  }

  // Every tensor must lie inside the data section, be aligned, and not overlap another.
  void check_data_ranges(const GgufFile& g) {
    if (g.tensors.empty()) return;  // vocab-only files may end before the padding
    check(g.data_offset <= f_->size(), "data section starts at ", g.data_offset, ", past the end of the file (",
          f_->size(), " bytes)");
    const uint64_t data_size = f_->size() - g.data_offset;
    std::vector<const GgufTensorInfo*> order;
    for (const auto& t : g.tensors) {
      check(t.offset % g.alignment == 0, "tensor '", t.name, "' offset ", t.offset,
            " is not a multiple of the alignment ", g.alignment);
      check(t.offset <= data_size && t.nbytes <= data_size - t.offset, "tensor '", t.name, "' (", t.nbytes,
            " bytes at data offset ", t.offset, ") extends past the end of the file");
      order.push_back(&t);
    }
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < order.size(); ++i)
      check(order[i - 1]->offset + order[i - 1]->nbytes <= order[i]->offset || order[i - 1]->nbytes == 0,
            "tensors '", order[i - 1]->name, "' and '", order[i]->name, "' overlap");
  }

  std::shared_ptr<MappedFile> f_;
  ByteReader r_;
};

}  // namespace

GgufFile read_gguf(const std::string& path) { return Parser(MappedFile::open(path)).parse(); }

// ---------------------------------------------------------------- writing

namespace {

class Writer {
 public:
  Writer(const std::string& path, uint32_t alignment) : path_(path), w_(path), alignment_(alignment) {}

  void header(uint64_t n_tensors, uint64_t n_kv) {
    w_.put<uint32_t>(kMagic);
    w_.put<uint32_t>(3);
    w_.put<uint64_t>(n_tensors);
    w_.put<uint64_t>(n_kv);
  }

  void kv(const GgufKV& e) {
    put_string(e.key);
    w_.put<uint32_t>(static_cast<uint32_t>(e.value.type()));
    value(e.value, e.key);
  }

  void tensor_info(const GgufTensorOut& t, uint64_t offset) {
    put_string(t.name);
    w_.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) w_.put<uint64_t>(d);
    w_.put<uint32_t>(t.type);
    w_.put<uint64_t>(offset);
  }

  void data(const void* p, uint64_t n) {
    w_.write(p, n);
    w_.pad_to(alignment_);  // the data section starts aligned, so absolute == relative alignment
  }
  void pad() { w_.pad_to(alignment_); }
  void commit() { w_.commit(); }

 private:
  void put_string(const std::string& s) {
    w_.put<uint64_t>(s.size());
    w_.write(s.data(), s.size());
  }

  void value(const GgufValue& v, const std::string& key) {
    std::visit([&](const auto& x) { scalar_or_array(x, key); }, v.v);
  }

  template <typename T>
  void scalar_or_array(const T& x, const std::string& key) {
    if constexpr (std::is_same_v<T, std::string>) {
      put_string(x);
    } else if constexpr (std::is_same_v<T, GgufArray>) {
      w_.put<uint32_t>(static_cast<uint32_t>(x.elem));
      w_.put<uint64_t>(x.items.size());
      for (const auto& it : x.items) {
        SHRINK_CHECK(it.type() == x.elem, path_, ": metadata '", key, "' is an array of ", gguf_type_name(x.elem),
                     " holding a ", gguf_type_name(it.type()));
        value(it, key);
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      w_.put<uint8_t>(x ? 1 : 0);  // the spec's one-byte bool
    } else {
      w_.put<T>(x);
    }
  }

  std::string path_;
  AtomicWriter w_;
  uint32_t alignment_;
};

uint32_t alignment_of(const std::string& path, const std::vector<GgufKV>& kv) {
  for (const auto& e : kv) {
    if (e.key != "general.alignment") continue;
    const auto* a = std::get_if<uint32_t>(&e.value.v);
    SHRINK_CHECK(a && is_pow2(*a), path, ": general.alignment must be a u32 power of two");
    return *a;
  }
  return 32;
}

void check_kv(const std::string& path, const std::vector<GgufKV>& kv) {
  std::set<std::string> keys;
  for (const auto& e : kv) {
    SHRINK_CHECK(!e.key.empty() && e.key.size() <= kMaxKeyLen, path, ": metadata key '", e.key,
                 "' is empty or too long");
    SHRINK_CHECK(keys.insert(e.key).second, path, ": duplicate metadata key '", e.key, "'");
  }
}

// Validates the tensors and returns each one's byte size.
std::vector<uint64_t> check_tensors(const std::string& path, const std::vector<GgufTensorOut>& tensors) {
  std::set<std::string> names;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    SHRINK_CHECK(!t.name.empty() && t.name.size() < kGgmlMaxName, path, ": tensor name '", t.name,
                 "' must be 1..", kGgmlMaxName - 1, " bytes (ggml's limit)");
    SHRINK_CHECK(names.insert(t.name).second, path, ": duplicate tensor '", t.name, "'");
    SHRINK_CHECK(!t.ne.empty() && t.ne.size() <= kMaxDims, path, ": tensor '", t.name, "' has ", t.ne.size(),
                 " dimensions (supported: 1..", kMaxDims, ")");
    uint64_t n = 0;
    std::string why;
    SHRINK_CHECK(tensor_bytes(t.ne, t.type, &n, &why), path, ": tensor '", t.name, "': ", why);
    SHRINK_CHECK(t.data || n == 0, path, ": tensor '", t.name, "' has no data");
    sizes.push_back(n);
  }
  return sizes;
}

}  // namespace

void write_gguf(const std::string& path, const std::vector<GgufKV>& kv, const std::vector<GgufTensorOut>& tensors) {
  check_kv(path, kv);
  const uint32_t alignment = alignment_of(path, kv);
  const std::vector<uint64_t> sizes = check_tensors(path, tensors);
  Writer w(path, alignment);
  w.header(tensors.size(), kv.size());
  for (const auto& e : kv) w.kv(e);
  // ggml expects tensors laid out in info order, each padded to the alignment.
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    w.tensor_info(tensors[i], offset);
    offset += align_up(sizes[i], alignment);
  }
  w.pad();
  for (size_t i = 0; i < tensors.size(); ++i) w.data(tensors[i].data, sizes[i]);
  w.commit();
}

}  // namespace shrink
