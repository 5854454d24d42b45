// Files: read-only-on-disk memory maps, a bounds-checked reader for parsing
// headers, and an atomic writer (temp file + fsync + rename) for outputs.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace shrink {

// A private (copy-on-write) mapping of a whole file: tensors can point into
// it without copying, and in-place edits never reach the disk.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// Sequential reader over a byte range that throws (naming the file) instead
// of reading past the end.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, uint64_t size, std::string what)
      : data_(data), size_(size), what_(std::move(what)) {}

  template <typename T>
  T read() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T), "value");
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(uint64_t n) {
    need(n, "string");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  const uint8_t* take(uint64_t n, const char* what = "data") {
    need(n, what);
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  void seek(uint64_t pos) {
    SHRINK_CHECK(pos <= size_, what_, ": offset ", pos, " is past the end (", size_, " bytes)");
    pos_ = pos;
  }
  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& what() const { return what_; }

 private:
  void need(uint64_t n, const char* what) const {
    SHRINK_CHECK(n <= size_ - pos_, what_, ": truncated (reading ", n, " bytes of ", what, " at offset ",
                 pos_, ", file has ", size_, ")");
  }
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string what_;
};

// Writes `path` atomically: bytes go to a temporary file in the same
// directory, which commit() fsyncs and renames over `path`. If the writer is
// destroyed without commit() (an exception, a crash), the temporary is removed
// and `path` is untouched.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path);
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, uint64_t n);
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    write(&v, sizeof(T));
  }
  void pad_to(uint64_t alignment);  // zero bytes up to a multiple of alignment
  uint64_t offset() const { return offset_; }
  void commit();

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  uint64_t offset_ = 0;
};

// Reads a whole (small) file into a string; throws with the path on failure.
// A path ending in .gz is decompressed (gzip), so text inputs (--data, --ppl,
// --calib) may be given compressed.
std::string read_text_file(const std::string& path);
// Writes a whole (small) file atomically.
void write_text_file(const std::string& path, const std::string& text);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace shrink
