// llama.cpp importance-matrix files; the layouts are documented in imatrix.h
// with the llama.cpp functions they were read from.
#include "io/imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/file.h"
#include "io/gguf.h"

namespace shrink {

namespace {

constexpr const char* kSumSuffix = ".in_sum2";
constexpr const char* kCountSuffix = ".counts";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string where(const ImportanceMatrix& m) { return m.path.empty() ? std::string("importance matrix") : m.path; }

// Sums of squares and counts must be finite and non-negative; a NaN here would
// silently disable the weighting of a whole tensor in the quantizer.
void check_values(const std::string& path, const std::string& name, const char* what, const float* v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    SHRINK_CHECK(std::isfinite(v[i]) && v[i] >= 0.0f, path, ": '", name, "' has ", what, " ", v[i], " at index ", i,
                 " (must be finite and >= 0)");
}

// An entry's shape must hold together before anything indexes into it.
void check_entry(const std::string& path, const std::string& name, const ImatrixEntry& e) {
  SHRINK_CHECK(!e.counts.empty(), path, ": '", name, "' has no counts");
  SHRINK_CHECK(!e.sum_sq.empty() && e.sum_sq.size() % e.counts.size() == 0, path, ": '", name, "' has ",
               e.sum_sq.size(), " sums, not a multiple of its ", e.counts.size(), " counts");
  check_values(path, name, "sum", e.sum_sq.data(), e.sum_sq.size());
  check_values(path, name, "count", e.counts.data(), e.counts.size());
}

std::vector<float> read_f32s(const uint8_t* p, uint64_t n) {
  std::vector<float> v(n);
  if (n) std::memcpy(v.data(), p, n * sizeof(float));  // the mapping need not be 4-byte aligned
  return v;
}

// ------------------------------------------------------------------ legacy

ImportanceMatrix read_legacy(const MappedFile& f) {
  const std::string& path = f.path();
  ByteReader r(f.data(), f.size(), path);
  ImportanceMatrix m;
  m.path = path, m.format = "legacy";
  const int32_t n_entries = r.read<int32_t>();
  // The smallest entry is 17 bytes (three int32s, a 1-byte name, one float).
  SHRINK_CHECK(n_entries >= 1 && uint64_t(n_entries) <= r.remaining() / 17, path,
               ": not an importance matrix: entry count ", n_entries, " is impossible for a file of ", f.size(),
               " bytes");
  for (int32_t i = 0; i < n_entries; ++i) {
    const int32_t len = r.read<int32_t>();
    SHRINK_CHECK(len >= 1 && uint64_t(len) <= r.remaining(), path, ": entry ", i + 1, " of ", n_entries,
                 " has name length ", len, " with ", r.remaining(), " bytes left");
    const std::string name = r.read_string(uint64_t(len));
    const int32_t ncall = r.read<int32_t>();
    const int32_t nval = r.read<int32_t>();
    SHRINK_CHECK(ncall >= 0, path, ": '", name, "' has a negative call count ", ncall);
    SHRINK_CHECK(nval >= 1 && uint64_t(nval) * 4 <= r.remaining(), path, ": '", name, "' claims ", nval,
                 " values but ", r.remaining(), " bytes are left");
    SHRINK_CHECK(!m.entries.count(name), path, ": '", name, "' appears twice");
    ImatrixEntry e;
    e.sum_sq = read_f32s(r.take(uint64_t(nval) * 4, "values"), uint64_t(nval));
    check_values(path, name, "value", e.sum_sq.data(), e.sum_sq.size());
    // The values are mean * ncall; keeping ncall as the count makes sum / count
    // the mean. ncall 0 never comes from llama.cpp, whose quantizer then uses the
    // values as they are: a count of 1 does the same.
    e.counts = {ncall > 0 ? float(ncall) : 1.0f};
    m.entries.emplace(name, std::move(e));
  }
  // Trailer (files since llama.cpp's dataset-name change): last chunk and the dataset file.
  if (r.remaining() > 0) {
    const int32_t last_chunk = r.read<int32_t>();
    SHRINK_CHECK(last_chunk >= 0, path, ": negative chunk count ", last_chunk);
    m.chunk_count = last_chunk;
    if (r.remaining() > 0) {
      const int32_t len = r.read<int32_t>();
      SHRINK_CHECK(len >= 0 && uint64_t(len) <= r.remaining(), path, ": dataset name length ", len, " with ",
                   r.remaining(), " bytes left");
      std::string dataset = r.read_string(uint64_t(len));
      if (!dataset.empty()) m.datasets.push_back(std::move(dataset));
    }
    SHRINK_CHECK(r.remaining() == 0, path, ": ", r.remaining(), " unexpected bytes after the dataset name");
  }
  return m;
}

// ------------------------------------------------------------------ GGUF

int64_t meta_count(const GgufFile& g, const char* key) {
  const GgufValue* v = g.find(key);
  if (!v) return 0;
  const int64_t x = v->as_int(g.path + ": " + key);
  SHRINK_CHECK(x >= 0, g.path, ": ", key, " is negative (", x, ")");
  return x;
}

ImportanceMatrix read_gguf_imatrix(const std::string& path) {
  const GgufFile g = read_gguf(path);
  ImportanceMatrix m;
  m.path = path, m.format = "gguf";
  if (const GgufValue* t = g.find("general.type")) {
    const std::string& type = t->as_string(path + ": general.type");
    SHRINK_CHECK(type == "imatrix", path, ": general.type is '", type, "', not 'imatrix' (a model, not an importance matrix?)");
  }
  // llama-quantize refuses a GGUF imatrix without these three keys; we read what is there.
  if (const GgufValue* d = g.find("imatrix.datasets")) {
    const GgufArray& a = d->as_array(path + ": imatrix.datasets");
    for (const GgufValue& s : a.items) m.datasets.push_back(s.as_string(path + ": imatrix.datasets"));
  }
  m.chunk_count = meta_count(g, "imatrix.chunk_count");
  m.chunk_size = meta_count(g, "imatrix.chunk_size");

  // Pair "<W>.in_sum2" with "<W>.counts"; other tensors (".in_sum") are ignored, as llama.cpp does.
  std::map<std::string, std::pair<const GgufTensorInfo*, const GgufTensorInfo*>> pairs;
  for (const GgufTensorInfo& t : g.tensors) {
    if (ends_with(t.name, kSumSuffix))
      pairs[t.name.substr(0, t.name.size() - std::strlen(kSumSuffix))].first = &t;
    else if (ends_with(t.name, kCountSuffix))
      pairs[t.name.substr(0, t.name.size() - std::strlen(kCountSuffix))].second = &t;
  }
  SHRINK_CHECK(!pairs.empty(), path, ": no '*", kSumSuffix, "' / '*", kCountSuffix,
               "' tensors: not an importance matrix");
  for (const auto& [name, p] : pairs) {
    const auto [sums, counts] = p;
    SHRINK_CHECK(sums && counts, path, ": '", name, "' has ", sums ? kSumSuffix : kCountSuffix, " but no ",
                 sums ? kCountSuffix : kSumSuffix);
    SHRINK_CHECK(sums->type == ggml_type::F32 && counts->type == ggml_type::F32, path, ": '", name,
                 "' sums and counts must be F32, not ", ggml_type_name(sums->type), " / ", ggml_type_name(counts->type));
    // in_sum2 is {cols} or {cols, n_mat}; counts is {1} or {1, n_mat}.
    SHRINK_CHECK(sums->ne.size() <= 2 && counts->ne.size() <= 2, path, ": '", name, "' has more than 2 dimensions");
    const uint64_t n_mat = sums->ne.size() == 2 ? sums->ne[1] : 1;
    SHRINK_CHECK(sums->numel() > 0 && n_mat >= 1, path, ": '", name, kSumSuffix, "' is empty");
    SHRINK_CHECK(counts->ne.at(0) == 1 && counts->numel() == n_mat, path, ": '", name, kCountSuffix, "' has ",
                 counts->numel(), " values for ", n_mat, " matrices (expected shape {1, ", n_mat, "})");
    ImatrixEntry e;
    e.sum_sq = read_f32s(g.tensor_data(*sums), sums->numel());
    e.counts = read_f32s(g.tensor_data(*counts), counts->numel());
    check_entry(path, name, e);
    m.entries.emplace(name, std::move(e));
  }
  return m;
}

int32_t to_i32(int64_t x, const std::string& path, const char* what) {
  SHRINK_CHECK(x >= 0 && x <= std::numeric_limits<int32_t>::max(), path, ": ", what, " ", x,
               " does not fit the file's 32-bit field");
  return static_cast<int32_t>(x);
}

}  // namespace

// ------------------------------------------------------------------ public

ImportanceMatrix read_imatrix(const std::string& path) {
  const auto f = MappedFile::open(path);
  if (f->size() >= 4 && std::memcmp(f->data(), "GGUF", 4) == 0) return read_gguf_imatrix(path);
  return read_legacy(*f);
}

void write_imatrix_gguf(const ImportanceMatrix& m, const std::string& path) {
  SHRINK_CHECK(!m.entries.empty(), path, ": no importance data to write");
  // Same keys and types as IMatrixCollector::save_imatrix.
  std::vector<GgufKV> kv = {
      {"general.type", GgufValue("imatrix")},
      {"imatrix.datasets", gguf_strings(m.datasets)},
      {"imatrix.chunk_count", GgufValue(static_cast<uint32_t>(to_i32(m.chunk_count, path, "chunk count")))},
      {"imatrix.chunk_size", GgufValue(static_cast<uint32_t>(to_i32(m.chunk_size, path, "chunk size")))},
  };
  // Tensor names in sorted order (std::map), sums then counts, as llama.cpp writes them.
  std::vector<GgufTensorOut> tensors;
  for (const auto& [name, e] : m.entries) {
    check_entry(path, name, e);
    const uint64_t n_mat = e.counts.size(), cols = e.sum_sq.size() / n_mat;
    // ggml_n_dims() drops a trailing 1, so a dense weight's tensors are 1-D.
    std::vector<uint64_t> sum_ne = {cols}, count_ne = {1};
    if (n_mat > 1) sum_ne.push_back(n_mat), count_ne.push_back(n_mat);
    tensors.push_back({name + kSumSuffix, sum_ne, ggml_type::F32, e.sum_sq.data()});
    tensors.push_back({name + kCountSuffix, count_ne, ggml_type::F32, e.counts.data()});
  }
  write_gguf(path, kv, tensors);
}

void write_imatrix_legacy(const ImportanceMatrix& m, const std::string& path) {
  // Values are (sum / count) * ncall with ncall = ceil(max count / chunk_size)
  // (IMatrixCollector::save_imatrix_legacy). Unknown chunk size (a matrix read
  // from a legacy file, whose counts already are ncall): chunks of 1.
  const double chunk = m.chunk_size > 0 ? double(m.chunk_size) : 1.0;
  std::vector<const std::pair<const std::string, ImatrixEntry>*> keep;
  for (const auto& kv : m.entries) {
    check_entry(path, kv.first, kv.second);
    // llama.cpp skips an entry none of whose matrices saw a token.
    if (*std::max_element(kv.second.counts.begin(), kv.second.counts.end()) > 0) keep.push_back(&kv);
  }
  SHRINK_CHECK(!keep.empty(), path, ": no importance data to write");
  AtomicWriter w(path);
  w.put(to_i32(int64_t(keep.size()), path, "entry count"));
  for (const auto* kv : keep) {
    const std::string& name = kv->first;
    const ImatrixEntry& e = kv->second;
    const float max_count = *std::max_element(e.counts.begin(), e.counts.end());
    const int32_t ncall = to_i32(int64_t(std::ceil(double(max_count) / chunk)), path, "call count");
    const int64_t cols = e.cols();
    std::vector<float> values(e.sum_sq.size());
    for (size_t i = 0; i < values.size(); ++i) {
      float count = e.counts[i / size_t(cols)], v = e.sum_sq[i];
      if (count == 0) v = 1, count = 1;  // a MoE expert with no tokens: llama.cpp stores 1
      // The comparison keeps a legacy file's values bit-exact through a read/write round trip.
      values[i] = count == float(ncall) ? v : (v / count) * float(ncall);
    }
    w.put(to_i32(int64_t(name.size()), path, "name length"));
    w.write(name.data(), name.size());
    w.put(ncall);
    w.put(to_i32(int64_t(values.size()), path, "value count"));
    w.write(values.data(), values.size() * sizeof(float));
  }
  w.put(to_i32(m.chunk_count, path, "chunk count"));
  const std::string dataset = m.datasets.empty() ? std::string() : m.datasets.back();
  w.put(to_i32(int64_t(dataset.size()), path, "dataset name length"));
  w.write(dataset.data(), dataset.size());
  w.commit();
}

void write_imatrix(const ImportanceMatrix& m, const std::string& path) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ends_with(lower, ".dat"))
    write_imatrix_legacy(m, path);
  else if (ends_with(lower, ".gguf"))
    write_imatrix_gguf(m, path);
  else
    fail(path, ": unknown importance-matrix format: name it .gguf (llama.cpp's current format) or .dat (legacy)");
}

std::vector<float> imatrix_mean_sq(const ImatrixEntry& e) {
  check_entry("importance matrix", "entry", e);
  const size_t cols = size_t(e.cols());
  std::vector<float> mean(e.sum_sq.size());
  for (size_t j = 0; j < e.counts.size(); ++j) {
    const float c = e.counts[j];
    for (size_t i = 0; i < cols; ++i) mean[j * cols + i] = c > 0 ? e.sum_sq[j * cols + i] / c : 1.0f;
  }
  return mean;
}

std::string imatrix_weight_name(const std::string& linear_name) { return linear_name + ".weight"; }

std::string imatrix_linear_name(const std::string& weight_name) {
  return ends_with(weight_name, ".weight") ? weight_name.substr(0, weight_name.size() - 7) : std::string();
}

ImportanceMatrix imatrix_from_mean_sq(const std::map<std::string, std::vector<float>>& mean_sq_by_linear,
                                      int64_t tokens, int64_t chunk_size, std::vector<std::string> datasets) {
  SHRINK_CHECK(tokens > 0 && chunk_size > 0, "importance matrix: ", tokens, " tokens in chunks of ", chunk_size);
  ImportanceMatrix m;
  m.datasets = std::move(datasets);
  m.chunk_size = chunk_size;
  m.chunk_count = tokens / chunk_size;
  for (const auto& [name, mean] : mean_sq_by_linear) {
    ImatrixEntry e;
    e.sum_sq.resize(mean.size());
    for (size_t i = 0; i < mean.size(); ++i) e.sum_sq[i] = float(double(mean[i]) * double(tokens));
    e.counts = {float(tokens)};
    check_entry("importance matrix", name, e);
    m.entries.emplace(imatrix_weight_name(name), std::move(e));
  }
  return m;
}

std::map<std::string, std::vector<float>> imatrix_for_linears(const ImportanceMatrix& m,
                                                              const std::vector<LinearShape>& linears,
                                                              std::vector<std::string>* missing) {
  const std::string path = where(m);
  std::map<std::string, std::vector<float>> out;
  for (const LinearShape& l : linears) {
    const std::string key = imatrix_weight_name(l.name);
    const auto it = m.entries.find(key);
    if (it == m.entries.end()) {
      if (missing) missing->push_back(l.name);
      continue;
    }
    const ImatrixEntry& e = it->second;
    SHRINK_CHECK(e.n_mat() == 1, path, ": '", key, "' holds ", e.n_mat(), " matrices (a MoE weight), but ", l.name,
                 " is a single matrix");
    SHRINK_CHECK(e.cols() == l.cols, path, ": '", key, "' has ", e.cols(), " columns but the model's ", l.name,
                 " has ", l.cols, " inputs (an importance matrix of another model?)");
    out[l.name] = imatrix_mean_sq(e);
  }
  SHRINK_CHECK(!out.empty() || linears.empty() || m.entries.empty(), path, ": none of the model's ", linears.size(),
               " linear layers has an entry (the file has e.g. '", m.entries.begin()->first,
               "'): an importance matrix of another model?");
  return out;
}

}  // namespace shrink
