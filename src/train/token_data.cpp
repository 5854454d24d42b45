#include "train/token_data.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"

namespace shrink::train {

namespace fs = std::filesystem;

namespace {

constexpr char kCacheMagic[8] = {'S', 'H', 'R', 'K', 'T', 'O', 'K', '1'};
constexpr int64_t kChunkBytes = 1 << 20;

// FNV-1a, 64-bit: stable across runs and builds (std::hash is not).
struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  }
  void str(const std::string& s) {
    const uint64_t n = s.size();
    bytes(&n, sizeof n);
    bytes(s.data(), s.size());
  }
  template <typename T>
  void pod(const T& v) { bytes(&v, sizeof v); }
};

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t text_identity(const std::string& path) {
  struct stat st {};
  SHRINK_CHECK(::stat(path.c_str(), &st) == 0, path, ": cannot read the data file (", std::strerror(errno), ")");
  SHRINK_CHECK(S_ISREG(st.st_mode), path, ": the data file is not a regular file");
  Fnv f;
  f.str(fs::canonical(path).string());
  f.pod(int64_t(st.st_size));
  f.pod(int64_t(st.st_mtim.tv_sec));
  f.pod(int64_t(st.st_mtim.tv_nsec));
  return f.h;
}

// Chunk boundaries at line ends, ~kChunkBytes apart.
std::vector<size_t> chunk_starts(const std::string& text) {
  std::vector<size_t> starts{0};
  size_t pos = 0;
  while (text.size() - pos > size_t(kChunkBytes)) {
    const size_t nl = text.find('\n', pos + kChunkBytes);
    if (nl == std::string::npos || nl + 1 >= text.size()) break;
    pos = nl + 1;
    starts.push_back(pos);
  }
  starts.push_back(text.size());
  return starts;
}

bool read_cache(const std::string& path, uint64_t key, std::vector<int32_t>& out) {
  if (!file_exists(path)) return false;
  try {
    auto file = MappedFile::open(path);
    ByteReader r(file->data(), file->size(), path);
    const std::string magic = r.read_string(8);
    if (std::memcmp(magic.data(), kCacheMagic, 8) != 0 || r.read<uint64_t>() != key) return false;
    const uint64_t n = r.read<uint64_t>();
    SHRINK_CHECK(n == r.remaining() / 4 && r.remaining() % 4 == 0, path, ": token cache has the wrong size");
    out.resize(n);
    std::memcpy(out.data(), r.take(n * 4, "token ids"), n * 4);
    return true;
  } catch (const Error&) {
    return false;  // a damaged cache is rebuilt, not fatal
  }
}

void write_cache(const std::string& path, uint64_t key, const std::vector<int32_t>& tokens) {
  fs::create_directories(fs::path(path).parent_path());
  AtomicWriter w(path);
  w.write(kCacheMagic, 8);
  w.put(key);
  w.put(uint64_t(tokens.size()));
  w.write(tokens.data(), tokens.size() * sizeof(int32_t));
  w.commit();
}

}  // namespace

uint64_t tokenizer_fingerprint(const Tokenizer& tok) {
  const Vocab& v = tok.vocab();
  Fnv f;
  f.str(tok.kind());
  f.str(v.model);
  f.pod(uint64_t(v.tokens.size()));
  for (const auto& t : v.tokens) f.str(t);
  f.bytes(v.scores.data(), v.scores.size() * sizeof(float));
  f.bytes(v.types.data(), v.types.size() * sizeof(int32_t));
  for (const auto& m : v.merges) f.str(m);
  for (int32_t id : {v.bos_id, v.eos_id, v.unk_id, v.pad_id}) f.pod(id);
  f.pod(uint8_t(v.add_bos));
  f.pod(uint8_t(v.add_space_prefix));
  return f.h;
}

std::string default_token_cache_dir() {
  if (const char* d = std::getenv("SHRINK_CACHE_DIR"); d && *d) return std::string(d) + "/tokens";
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/shrink/tokens";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/shrink/tokens";
  return "";
}

TokenFile tokenize_file(const std::string& path, const Tokenizer& tok, const std::string& cache_dir,
                        const std::function<void(const TokenizeProgress&)>& progress) {
  TokenFile out;
  Fnv key;
  key.pod(text_identity(path));
  key.pod(tokenizer_fingerprint(tok));
  key.pod(kChunkBytes);
  out.key = key.h;
  if (!cache_dir.empty()) {
    char name[32];
    std::snprintf(name, sizeof name, "%016llx.tok", static_cast<unsigned long long>(out.key));
    out.cache_path = (fs::path(cache_dir) / name).string();
    if (read_cache(out.cache_path, out.key, out.tokens)) {
      out.from_cache = true;
      return out;
    }
  }
  const std::string text = read_text_file(path);
  SHRINK_CHECK(!text.empty(), path, ": the data file is empty");
  const std::vector<size_t> starts = chunk_starts(text);
  const int64_t n_chunks = int64_t(starts.size()) - 1;
  std::vector<std::vector<int32_t>> chunks(n_chunks);
  TokenizeProgress pr{0, int64_t(text.size()), 0};
  int64_t next_report = 0;  // chunks are reported in order, whatever order threads finish them
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t c = 0; c < n_chunks; ++c) {
    chunks[c] = tok.encode(std::string_view(text).substr(starts[c], starts[c + 1] - starts[c]),
                           c == 0 && tok.vocab().add_bos);
#pragma omp critical
    {
      while (next_report < n_chunks && !chunks[next_report].empty()) {
        pr.bytes_done = int64_t(starts[next_report + 1]);
        pr.tokens += int64_t(chunks[next_report].size());
        ++next_report;
        if (progress) progress(pr);
      }
    }
  }
  for (auto& c : chunks) out.tokens.insert(out.tokens.end(), c.begin(), c.end());
  if (!out.cache_path.empty()) write_cache(out.cache_path, out.key, out.tokens);
  return out;
}

TokenSplit split_tail(std::vector<int32_t> tokens, double fraction) {
  SHRINK_CHECK(fraction >= 0 && fraction < 1, "validation fraction must be in [0, 1), got ", fraction);
  TokenSplit s;
  const size_t n_val = size_t(double(tokens.size()) * fraction);
  s.valid.assign(tokens.end() - int64_t(n_val), tokens.end());
  tokens.resize(tokens.size() - n_val);
  s.train = std::move(tokens);
  return s;
}

WindowSampler::WindowSampler(const std::vector<int32_t>* tokens, int64_t seq_len, uint64_t seed)
    : tokens_(tokens), seq_len_(seq_len), seed_(seed) {
  SHRINK_CHECK(seq_len > 0, "sequence length must be positive");
  SHRINK_CHECK(int64_t(tokens->size()) > seq_len, "the training data has ", tokens->size(),
               " tokens: too few for one window of ", seq_len + 1, " (sequence length + 1)");
}

int64_t WindowSampler::start_positions() const { return int64_t(tokens_->size()) - seq_len_; }

Batch WindowSampler::next(int64_t batch) {
  Batch b;
  b.inputs.reserve(batch * seq_len_);
  b.targets.reserve(batch * seq_len_);
  const uint64_t n_starts = uint64_t(start_positions());
  for (int64_t i = 0; i < batch; ++i) {
    // Modulo bias is below n_starts / 2^64: negligible for any corpus.
    const uint64_t start = splitmix64(seed_ ^ splitmix64(counter_++)) % n_starts;
    const int32_t* w = tokens_->data() + start;
    b.inputs.insert(b.inputs.end(), w, w + seq_len_);
    b.targets.insert(b.targets.end(), w + 1, w + seq_len_ + 1);
  }
  return b;
}

std::vector<Batch> validation_batches(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t batch,
                                      int64_t max_tokens) {
  std::vector<Batch> out;
  const int64_t n = int64_t(tokens.size());
  int64_t windows = n > seq_len ? (n - 1) / seq_len : 0;
  if (max_tokens > 0) windows = std::min(windows, std::max<int64_t>(1, max_tokens / seq_len));
  for (int64_t w = 0; w < windows; ++w) {
    if (w % batch == 0) out.emplace_back();
    const int32_t* p = tokens.data() + w * seq_len;
    out.back().inputs.insert(out.back().inputs.end(), p, p + seq_len);
    out.back().targets.insert(out.back().targets.end(), p + 1, p + seq_len + 1);
  }
  return out;
}

}  // namespace shrink::train
