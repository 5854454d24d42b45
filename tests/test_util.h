// Helpers shared by the tests: where ../shared is, and skipping cleanly without it.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>
#include <unistd.h>

namespace shrink::test {

// ../shared beside the source tree (or $SHRINK_SHARED); "" when absent.
inline std::string shared_dir() {
  if (const char* env = std::getenv("SHRINK_SHARED")) return env;
  const std::filesystem::path p = std::filesystem::path(SHRINK_SOURCE_DIR) / ".." / "shared";
  return std::filesystem::exists(p / "assets") ? std::filesystem::canonical(p).string() : "";
}

// Path of a file under ../shared/assets, or "" if it (or ../shared) is missing.
inline std::string asset(const std::string& rel) {
  const std::string d = shared_dir();
  if (d.empty()) return "";
  const std::string p = d + "/assets/" + rel;
  return std::filesystem::exists(p) ? p : "";
}

// The directories temp_dir made, removed when the test process exits (each
// ctest test is its own process) unless SHRINK_KEEP_TEST_DIRS is set, for a
// look at a failed test's files.
struct TempDirs {
  std::vector<std::filesystem::path> made;
  ~TempDirs() {
    if (std::getenv("SHRINK_KEEP_TEST_DIRS")) return;
    std::error_code ec;
    for (const auto& d : made) std::filesystem::remove_all(d, ec);
  }
};
inline TempDirs& temp_dirs() {
  static TempDirs dirs;
  return dirs;
}

// A fresh empty directory for a test's outputs.
inline std::string temp_dir(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("shrink_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  temp_dirs().made.push_back(p);
  return p.string();
}

}  // namespace shrink::test

// Skips the current test, saying which asset is missing, when ../shared is absent.
#define SHRINK_REQUIRE_ASSET(var, rel)                                                          \
  const std::string var = ::shrink::test::asset(rel);                                           \
  if (var.empty()) GTEST_SKIP() << "needs ../shared/assets/" << (rel) << " (not present: skipped)"

#include <sys/mman.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <random>
#include <vector>

#include "io/model_file.h"
#include "io/safetensors.h"
#include "model/transformer.h"

namespace shrink::test {
inline LoadOptions with_tokenizer() {
  LoadOptions o;
  o.require_tokenizer = true;
  return o;
}

// The shape fields every format must carry through a round trip (each format's
// tests add what else it stores: rope scaling, tied heads, biases, ...).
inline void expect_same_shape(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.hidden_dim, b.hidden_dim);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
}

// Logits at every position of toks, from a fresh cache.
inline std::vector<float> all_logits(Transformer& m, const std::vector<int32_t>& toks) {
  KVCache cache = m.new_cache(static_cast<int>(toks.size()));
  std::vector<float> out(toks.size() * size_t(m.config().vocab_size));
  m.forward(toks.data(), static_cast<int>(toks.size()), cache, out.data(), true);
  return out;
}

// BOS (1), then n - 1 tokens drawn from [3, 503) (the random models' vocab is 512).
inline std::vector<int32_t> random_tokens(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  t[0] = 1;
  for (int i = 1; i < n; ++i) t[i] = 3 + int32_t(rng() % 500);
  return t;
}
#ifdef SHRINK_BINARY
struct CliResult {
  int code;         // exit status (128 + signal when killed)
  std::string out;  // stdout (+ stderr when merged)
};
// Runs the shrink binary with `args` (shell syntax).
inline CliResult run_shrink(const std::string& args, bool merge_stderr = true) {
  const std::string cmd = std::string(SHRINK_BINARY) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  CliResult r{-1, ""};
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}
#endif

// Memory of `bytes` ending exactly where an inaccessible page starts, so any
// load past the end faults (kernel tail tests).
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t bytes) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    span_ = (bytes + page - 1) / page * page + page;
    base_ = static_cast<char*>(mmap(nullptr, span_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) std::abort();
    mprotect(base_ + span_ - page, page, PROT_NONE);
    data_ = base_ + span_ - page - bytes;
  }
  ~GuardedBuffer() { munmap(base_, span_); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  char* data() const { return data_; }

 private:
  char* base_;
  char* data_;
  size_t span_;
};
// Little-endian byte builder for hand-made (often deliberately broken) files:
// GGUF (u64-length strings, header, alignment) and legacy imatrix (i32-length names).
struct Bytes {
  std::string b;
  template <typename T>
  Bytes& put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& i32(int32_t v) { return put(v); }
  Bytes& f32(float v) { return put(v); }
  Bytes& str(const std::string& s) {  // GGUF string: u64 length, bytes
    u64(s.size());
    b += s;
    return *this;
  }
  Bytes& name(const std::string& s) {  // legacy imatrix name: i32 length, bytes
    i32(static_cast<int32_t>(s.size()));
    b += s;
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {  // GGUF
    b += "GGUF";
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& pad(size_t a = 32) {
    b.append((a - b.size() % a) % a, '\0');
    return *this;
  }
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
// The message of the exception f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// Rewrites a safetensors file after `edit` changes its tensors (to make bad files).
inline void edit_safetensors(const std::string& path,
                             const std::function<void(std::map<std::string, Tensor>&)>& edit) {
  std::map<std::string, Tensor> t;
  for (auto& [name, v] : read_safetensors(path).tensors) t[name] = v.clone();
  edit(t);
  write_safetensors(path, t);
}

}  // namespace shrink::test
