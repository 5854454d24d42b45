#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>

namespace shrink {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  SHRINK_CHECK(fd >= 0, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  auto mf = std::shared_ptr<MappedFile>(new MappedFile());
  mf->path_ = path;
  mf->size_ = static_cast<uint64_t>(st.st_size);
  if (mf->size_ > 0) {
    void* p = mmap(nullptr, mf->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail(path, ": mmap failed (", std::strerror(errno), ")");
    }
    mf->data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);
  return mf;
}

MappedFile::~MappedFile() {
  if (data_) munmap(data_, size_);
}

AtomicWriter::AtomicWriter(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp-" + std::to_string(getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  SHRINK_CHECK(f_, path_, ": cannot create temporary file ", tmp_, " (", std::strerror(errno), ")");
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 22);
}

AtomicWriter::~AtomicWriter() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void AtomicWriter::write(const void* data, uint64_t n) {
  SHRINK_CHECK(f_, path_, ": write after commit");
  if (n && std::fwrite(data, 1, n, f_) != n) fail(path_, ": write failed (", std::strerror(errno), ")");
  offset_ += n;
}

void AtomicWriter::pad_to(uint64_t alignment) {
  static const char zeros[256] = {};
  uint64_t pad = (alignment - offset_ % alignment) % alignment;
  while (pad) {
    const uint64_t n = pad < sizeof(zeros) ? pad : sizeof(zeros);
    write(zeros, n);
    pad -= n;
  }
}

void AtomicWriter::commit() {
  SHRINK_CHECK(f_, path_, ": committed twice");
  bool ok = std::fflush(f_) == 0 && fsync(fileno(f_)) == 0;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    fail(path_, ": could not finish writing (", std::strerror(errno), ")");
  }
}

namespace {

bool ends_with_gz(const std::string& path) { return path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0; }

// The decompressed bytes of a gzip file (several concatenated members, as `cat a.gz b.gz`, included).
std::string read_gzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  SHRINK_CHECK(f, path, ": cannot open (", std::strerror(errno), ")");
  gzbuffer(f, 1 << 20);
  std::string out;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const int n = gzread(f, buf.data(), unsigned(buf.size()));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      fail(path, ": not a valid gzip file (", msg, ")");
    }
    if (n == 0) break;
    out.append(buf.data(), size_t(n));
  }
  // zlib reads a file without a gzip header as plain bytes ("transparent"), and ends a cut
  // stream quietly with Z_BUF_ERROR: both are errors for a file named .gz.
  const bool plain = gzdirect(f) == 1;
  int code = Z_OK;
  gzerror(f, &code);
  gzclose(f);
  SHRINK_CHECK(!plain, path, ": not a gzip file (no gzip header), though its name ends in .gz");
  SHRINK_CHECK(code == Z_OK, path, ": gzip stream ended early (truncated file?)");
  return out;
}

}  // namespace

std::string read_text_file(const std::string& path) {
  if (ends_with_gz(path)) return read_gzip_file(path);
  std::ifstream in(path, std::ios::binary);
  SHRINK_CHECK(in, path, ": cannot open (", std::strerror(errno), ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text_file(const std::string& path, const std::string& text) {
  AtomicWriter w(path);
  w.write(text.data(), text.size());
  w.commit();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace shrink
