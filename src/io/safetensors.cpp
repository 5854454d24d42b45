// safetensors reading (mmap, fully bounds-checked) and atomic writing, single
// files and sharded sets. See safetensors.h for the layout.
#include "io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file.h"

namespace shrink {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The reference implementation refuses headers above 100 MB; a larger length
// is a corrupt file, not a big model.
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;
// No real tensor has 2^50 elements; the bound keeps byte counts far from overflow.
constexpr uint64_t kMaxElems = uint64_t(1) << 50;

struct Entry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void put_u64_le(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// What a json value is, for error messages (its dump could be huge or multi-line).
std::string kind_of(const json& j) { return j.type_name(); }

std::vector<int64_t> parse_shape(const json& j, const std::string& where) {
  SHRINK_CHECK(j.is_array(), where, ": \"shape\" is a ", kind_of(j), ", expected an array");
  std::vector<int64_t> shape;
  uint64_t n = 1;
  for (const auto& d : j) {
    SHRINK_CHECK(d.is_number_unsigned(), where, ": shape has a ", kind_of(d),
                 " entry, expected a non-negative integer");
    const uint64_t v = d.get<uint64_t>();
    SHRINK_CHECK(v <= kMaxElems && (v == 0 || n <= kMaxElems / v), where, ": shape is implausibly large");
    n *= v;
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

Entry parse_entry(const std::string& name, const json& v, const std::string& path) {
  const std::string where = path + ": tensor '" + name + "'";
  SHRINK_CHECK(v.is_object(), where, ": header entry is a ", kind_of(v), ", expected an object");
  Entry e;
  e.name = name;
  const auto dt = v.find("dtype");
  SHRINK_CHECK(dt != v.end() && dt->is_string(), where, ": missing or non-string \"dtype\"");
  e.dtype = safetensors_dtype(dt->get<std::string>(), where);
  const auto sh = v.find("shape");
  SHRINK_CHECK(sh != v.end(), where, ": missing \"shape\"");
  e.shape = parse_shape(*sh, where);
  const auto off = v.find("data_offsets");
  SHRINK_CHECK(off != v.end() && off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
                   (*off)[1].is_number_unsigned(),
               where, ": \"data_offsets\" must be two non-negative integers");
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  SHRINK_CHECK(e.begin <= e.end, where, ": data_offsets [", e.begin, ", ", e.end, "] are reversed");
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& j, const std::string& path) {
  SHRINK_CHECK(j.is_object(), path, ": \"__metadata__\" is a ", kind_of(j), ", expected an object");
  std::map<std::string, std::string> md;
  for (const auto& [k, v] : j.items()) {
    SHRINK_CHECK(v.is_string(), path, ": __metadata__ value '", k, "' is a ", kind_of(v), ", expected a string");
    md[k] = v.get<std::string>();
  }
  return md;
}

// The data section must be exactly covered by the tensors, in some order, with
// no overlap and no hole (as the reference reader requires), and every byte
// range must match its shape and dtype.
void check_layout(std::vector<Entry>& entries, uint64_t data_size, const std::string& path) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t expected = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    const std::string where = path + ": tensor '" + e.name + "'";
    SHRINK_CHECK(e.end <= data_size, where, ": data_offsets [", e.begin, ", ", e.end,
                 "] run past the end of the data (", data_size, " bytes; file truncated?)");
    int64_t numel = 1;
    for (auto d : e.shape) numel *= d;
    const uint64_t want = static_cast<uint64_t>(dtype_bytes(e.dtype, numel));
    SHRINK_CHECK(e.end - e.begin == want, where, ": data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin,
                 " bytes but shape ", shape_str(e.shape), " of ", safetensors_dtype_name(e.dtype), " needs ", want);
    SHRINK_CHECK(e.begin >= expected, where, ": data_offsets [", e.begin, ", ", e.end, "] overlap tensor '",
                 prev ? prev->name : "", "'");
    SHRINK_CHECK(e.begin == expected, where, ": data_offsets start at ", e.begin, " leaving a hole after byte ",
                 expected);
    expected = e.end;
    prev = &e;
  }
  SHRINK_CHECK(expected == data_size, path, ": the tensors end at data byte ", expected, " but the data section has ",
               data_size, " bytes");
}

// A view into the mapping, or an aligned copy when the producer left the data
// misaligned for its element type (kernels may assume natural alignment).
Tensor tensor_at(const Entry& e, const std::shared_ptr<MappedFile>& file, uint64_t data_start) {
  uint8_t* p = file->data() + data_start + e.begin;
  const uint64_t align = static_cast<uint64_t>(dtype_bytes(e.dtype, 1));
  Tensor view = Tensor::view(e.dtype, e.shape, p, file);
  if (reinterpret_cast<uintptr_t>(p) % align == 0) return view;
  return view.clone();
}

json parse_header(const uint8_t* p, uint64_t n, const std::string& path) {
  SHRINK_CHECK(n >= 2 && p[0] == '{', path, ": header does not start with '{' (not a safetensors file?)");
  try {
    return json::parse(p, p + n);
  } catch (const json::exception& e) {
    fail(path, ": header is not valid JSON (", e.what(), ")");
  }
}

}  // namespace

DType safetensors_dtype(const std::string& name, const std::string& source) {
  static const std::map<std::string, DType> kNames = {{"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
                                                      {"I8", DType::I8},   {"I16", DType::I16}, {"I32", DType::I32},
                                                      {"I64", DType::I64}, {"F64", DType::F64}};
  const auto it = kNames.find(name);
  SHRINK_CHECK(it != kNames.end(), source, ": unsupported dtype '", name.substr(0, 32),
               "' (supported: F32, F16, BF16, F64, I8, I16, I32, I64)");
  return it->second;
}

std::string safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I8:
      return "I8";
    case DType::I16:
      return "I16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::F64:
      return "F64";
    default:
      fail("dtype ", dtype_name(t), " cannot be stored in safetensors (block-quantized)");
  }
}

SafetensorsData read_safetensors(const std::string& path) {
  auto file = MappedFile::open(path);
  const uint64_t size = file->size();
  SHRINK_CHECK(size >= 8, path, ": file is ", size, " bytes, too short for a safetensors header");
  const uint64_t n = read_u64_le(file->data());
  SHRINK_CHECK(n <= size - 8, path, ": header length ", n, " exceeds the file size (", size, " bytes; truncated?)");
  SHRINK_CHECK(n <= kMaxHeaderBytes, path, ": header length ", n, " is implausibly large");
  const json header = parse_header(file->data() + 8, n, path);
  SHRINK_CHECK(header.is_object(), path, ": header is a JSON ", kind_of(header), ", expected an object");

  SafetensorsData out;
  out.files.push_back(path);
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__")
      out.metadata = parse_metadata(v, path);
    else
      entries.push_back(parse_entry(name, v, path));
  }
  check_layout(entries, size - 8 - n, path);
  for (const Entry& e : entries) out.tensors[e.name] = tensor_at(e, file, 8 + n);
  return out;
}

SafetensorsData read_safetensors_index(const std::string& index_path) {
  json index;
  try {
    index = json::parse(read_text_file(index_path));
  } catch (const json::exception& e) {
    fail(index_path, ": not valid JSON (", e.what(), ")");
  }
  const auto wm = index.is_object() ? index.find("weight_map") : index.end();
  SHRINK_CHECK(wm != index.end() && wm->is_object(), index_path, ": missing \"weight_map\" object");
  std::map<std::string, std::vector<std::string>> by_file;  // shard -> tensor names it should hold
  for (const auto& [name, f] : wm->items()) {
    SHRINK_CHECK(f.is_string(), index_path, ": weight_map entry '", name, "' is not a file name");
    const std::string file = f.get<std::string>();
    SHRINK_CHECK(!file.empty() && file.find('/') == std::string::npos, index_path, ": weight_map entry '", name,
                 "' names '", file, "', which is not a file in this directory");
    by_file[file].push_back(name);
  }
  SHRINK_CHECK(!by_file.empty(), index_path, ": weight_map is empty");

  SafetensorsData out;
  const fs::path dir = fs::path(index_path).parent_path();
  for (const auto& [file, names] : by_file) {
    const std::string shard_path = (dir / file).string();
    SafetensorsData shard = read_safetensors(shard_path);
    for (const auto& name : names)
      SHRINK_CHECK(shard.tensors.count(name), index_path, ": tensor '", name, "' is listed in ", file,
                   " but that shard does not contain it");
    for (auto& [name, t] : shard.tensors) {
      SHRINK_CHECK(!out.tensors.count(name), shard_path, ": tensor '", name, "' also appears in another shard");
      out.tensors[name] = std::move(t);
    }
    if (out.files.empty()) out.metadata = shard.metadata;
    out.files.push_back(shard_path);
  }
  return out;
}

SafetensorsData read_safetensors_dir(const std::string& dir) {
  const fs::path d(dir);
  if (file_exists((d / "model.safetensors").string())) return read_safetensors((d / "model.safetensors").string());
  if (file_exists((d / "model.safetensors.index.json").string()))
    return read_safetensors_index((d / "model.safetensors.index.json").string());
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(d, ec))
    if (e.path().extension() == ".safetensors") found.push_back(e.path().string());
  SHRINK_CHECK(!ec, dir, ": cannot list directory (", ec.message(), ")");
  SHRINK_CHECK(found.size() <= 1, dir, ": ", found.size(),
               " .safetensors files but no model.safetensors.index.json saying how they fit together");
  SHRINK_CHECK(found.size() == 1, dir,
               ": no model.safetensors or model.safetensors.index.json (only safetensors weights are supported; "
               "convert pytorch_model.bin first)");
  return read_safetensors(found[0]);
}

TensorSource source_of(const std::string& name, const Tensor& t) {
  return TensorSource{name, t.dtype, t.shape, [t] { return t; }};
}

namespace {

// Tensor order within a file: larger elements first keeps every tensor aligned
// to its element size, given that the data section starts 8-aligned.
std::vector<size_t> layout_order(const std::vector<TensorSource>& ts) {
  std::vector<size_t> order(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t ea = dtype_bytes(ts[a].dtype, 1), eb = dtype_bytes(ts[b].dtype, 1);
    return ea != eb ? ea > eb : ts[a].name < ts[b].name;
  });
  return order;
}

uint64_t source_bytes(const TensorSource& s) {
  int64_t n = 1;
  for (auto d : s.shape) {
    SHRINK_CHECK(d >= 0, "tensor '", s.name, "': negative dimension in shape ", shape_str(s.shape));
    n *= d;
  }
  return static_cast<uint64_t>(dtype_bytes(s.dtype, n));
}

// The header json padded with spaces so that 8 + its length is a multiple of 8.
std::string make_header(const std::vector<TensorSource>& ts, const std::vector<size_t>& order,
                        const std::map<std::string, std::string>& metadata, const std::string& path) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t off = 0;
  for (size_t i : order) {
    const TensorSource& s = ts[i];
    SHRINK_CHECK(!s.name.empty() && s.name != "__metadata__", path, ": invalid tensor name '", s.name, "'");
    SHRINK_CHECK(seen.insert(s.name).second, path, ": tensor '", s.name, "' given twice");
    const uint64_t n = source_bytes(s);
    h[s.name] = {{"dtype", safetensors_dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorSource>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::vector<size_t> order = layout_order(tensors);
  const std::string header = make_header(tensors, order, metadata, path);
  AtomicWriter w(path);
  uint8_t len[8];
  put_u64_le(len, header.size());
  w.write(len, 8);
  w.write(header.data(), header.size());
  for (size_t i : order) {
    const TensorSource& s = tensors[i];
    const Tensor t = s.get();
    SHRINK_CHECK(t.dtype == s.dtype && t.shape == s.shape, path, ": tensor '", s.name, "' was declared ",
                 dtype_name(s.dtype), " ", shape_str(s.shape), " but produced ", dtype_name(t.dtype), " ",
                 shape_str(t.shape));
    w.write(t.data, static_cast<uint64_t>(t.nbytes()));
  }
  w.commit();
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSource> ts;
  for (const auto& [name, t] : tensors) ts.push_back(source_of(name, t));
  write_safetensors(path, ts, metadata);
}

namespace {

void remove_stale(const fs::path& p) {
  std::error_code ec;
  fs::remove(p, ec);
  SHRINK_CHECK(!ec, p.string(), ": cannot remove stale file (", ec.message(), ")");
}

// Consecutive groups of tensors (in the caller's order) of at most max_bytes
// each; a tensor larger than the limit gets a shard of its own.
std::vector<std::vector<TensorSource>> plan_shards(const std::vector<TensorSource>& ts, uint64_t max_bytes) {
  std::vector<std::vector<TensorSource>> shards(1);
  uint64_t cur = 0;
  for (const auto& s : ts) {
    const uint64_t n = source_bytes(s);
    if (!shards.back().empty() && cur + n > max_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(s);
    cur += n;
  }
  return shards;
}

}  // namespace

std::vector<std::string> write_safetensors_model(const std::string& dir, const std::vector<TensorSource>& tensors,
                                                 const std::map<std::string, std::string>& metadata,
                                                 uint64_t max_shard_bytes, const std::string& stem) {
  SHRINK_CHECK(max_shard_bytes > 0, dir, ": shard size limit must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  SHRINK_CHECK(!ec && is_directory(dir), dir, ": cannot create output directory (", ec.message(), ")");
  const fs::path d(dir);
  const std::string single = stem + ".safetensors", index = stem + ".safetensors.index.json";
  uint64_t total = 0;
  for (const auto& s : tensors) total += source_bytes(s);
  if (total <= max_shard_bytes) {
    write_safetensors((d / single).string(), tensors, metadata);
    remove_stale(d / index);
    return {single};
  }
  const auto shards = plan_shards(tensors, max_shard_bytes);
  std::vector<std::string> names;
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    names.push_back(stem + name);
    write_safetensors((d / names.back()).string(), shards[i], metadata);
    for (const auto& s : shards[i]) weight_map[s.name] = names.back();
  }
  // Readers prefer the single file, so a stale one must go before the index appears.
  remove_stale(d / single);
  const json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_text_file((d / index).string(), idx.dump(2) + "\n");
  names.push_back(index);
  return names;
}

}  // namespace shrink
