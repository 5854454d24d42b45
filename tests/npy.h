// Minimal reader of NumPy .npy files (little-endian float32, C order) for
// comparing with the PyTorch reference arrays in ../shared.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"

namespace shrink::test {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

inline NpyArray read_npy_f32(const std::string& path) {
  const std::string bytes = read_text_file(path);
  SHRINK_CHECK(bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY") == 0, path, ": not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t hlen, hstart;
  if (major == 1) {
    hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    hstart = 10;
  } else {
    uint32_t v;
    std::memcpy(&v, bytes.data() + 8, 4);
    hlen = v;
    hstart = 12;
  }
  const std::string header = bytes.substr(hstart, hlen);
  SHRINK_CHECK(header.find("'<f4'") != std::string::npos, path, ": expected little-endian float32");
  SHRINK_CHECK(header.find("'fortran_order': False") != std::string::npos, path, ": expected C order");
  NpyArray a;
  const size_t lp = header.find('(', header.find("'shape'")), rp = header.find(')', lp);
  std::string dims = header.substr(lp + 1, rp - lp - 1);
  size_t pos = 0;
  while (pos < dims.size()) {
    const size_t comma = dims.find(',', pos);
    const std::string d = dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (d.find_first_of("0123456789") != std::string::npos) a.shape.push_back(std::stoll(d));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  int64_t n = 1;
  for (auto d : a.shape) n *= d;
  SHRINK_CHECK(bytes.size() == hstart + hlen + size_t(n) * 4, path, ": size does not match shape");
  a.data.resize(n);
  std::memcpy(a.data.data(), bytes.data() + hstart + hlen, size_t(n) * 4);
  return a;
}

}  // namespace shrink::test
