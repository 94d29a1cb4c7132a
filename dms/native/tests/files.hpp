// File helpers shared by the C++ tests: random content, whole-file read and
// write, a file's mtime, and the CopySpec of a byte range of a real file.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "dms/copier.hpp"

namespace dms_test {

inline std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Bytes [off, off + len) of `src` (whose size is `size`) into `dst`, checked against its mtime now.
inline dms::CopySpec spec_for(const std::string& src, const std::string& dst, uint64_t off, uint64_t len,
                              uint64_t size) {
  return dms::CopySpec{src, dst, off, len, size, mtime_ns(src), true};
}

}  // namespace dms_test
