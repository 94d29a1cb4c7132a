// File helpers shared by the C++ tests: random content, whole-file read and
// write, a file's mtime, and the CopySpec of a byte range of a real file.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

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

// Bytes of `path` in the page cache (mincore over an untouched mapping).
inline size_t cached_bytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size == 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  auto size = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return size;
  size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((size + page - 1) / page);
  size_t n = 0;
  if (::mincore(p, size, v.data()) == 0)
    for (unsigned char b : v) n += (b & 1) ? page : 0;
  ::munmap(p, size);
  return n;
}

// Writes `path` out and drops it from the page cache. False where the filesystem
// keeps it cached anyway (tmpfs): a test of cache behaviour cannot run there.
inline bool make_cold(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ::fsync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  return cached_bytes(path) == 0;
}

}  // namespace dms_test
