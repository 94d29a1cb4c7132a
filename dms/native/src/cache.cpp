#include "dms/cache.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace dms {

bool range_uncached(const File& f, uint64_t off, uint64_t len) noexcept {
  if (len == 0) return false;
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t start = off / page * page;
  size_t span = static_cast<size_t>(off + len - start);
  void* p = ::mmap(nullptr, span, PROT_READ, MAP_SHARED, f.fd(), static_cast<off_t>(start));
  if (p == MAP_FAILED) return false;
  std::vector<unsigned char> resident((span + page - 1) / page);
  bool known = ::mincore(p, span, resident.data()) == 0;
  ::munmap(p, span);
  if (!known) return false;
  return std::none_of(resident.begin(), resident.end(), [](unsigned char v) { return (v & 1) != 0; });
}

void drop_cached(const File& f, uint64_t off, uint64_t len) noexcept {
  ::posix_fadvise(f.fd(), static_cast<off_t>(off), static_cast<off_t>(len), POSIX_FADV_DONTNEED);
}

}  // namespace dms
