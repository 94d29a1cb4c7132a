// Hashing file bytes where they lie in the page cache, through a read-only
// shared mapping, instead of copying them into a buffer first (pread). The
// sender (which then sendfile()s the same range), the local copier (after
// copy_file_range) and finalize's re-read never need the bytes in user memory
// except to hash them: the copy out of the page cache was a third of the CPU
// they spent per byte (docs/decisions/0020-hash-from-the-page-cache.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dms/checksum.hpp"
#include "dms/file.hpp"

namespace dms {

// Below this a pread into a reused buffer costs less than setting up a mapping.
constexpr size_t kMapMinBytes = 256 * 1024;
// How much one mapping covers: fewer mmap/munmap calls per GiB, and a bounded
// amount of page cache mapped (and counted in RSS) at a time.
constexpr size_t kMapWindowBytes = 8u << 20;

enum class Mapped {
  Hashed,      // all n bytes were fed to the hasher
  Short,       // the file holds fewer than off + n bytes, or was truncated while being read
  Unmappable,  // this file cannot be mapped (some FUSE or special files): read it instead
};

// Feeds bytes [off, off + n) of `f` to `h` through a mapping. A truncation
// while hashing raises SIGBUS on the first page past the new end; that signal
// is caught on this thread and reported as Short (the hasher's state is then
// undefined: the caller discards it). Throws SystemError for other failures.
Mapped hash_mapped(const File& f, uint64_t off, size_t n, Hasher& h);

// Feeds bytes [off, off + n) of `f` to `h`: through mappings of up to
// kMapWindowBytes where the range is large and the file can be mapped, else by
// pread into `buffer`. False when the file ended (or was cut) before off + n;
// the hasher's state is then undefined.
bool hash_file_range(const File& f, uint64_t off, uint64_t n, Hasher& h, std::vector<unsigned char>& buffer);

// For tests: runs between mapping and hashing (after the size check), so a test
// can truncate the file exactly there. Never set in production.
using AfterMapHook = void (*)(int fd);
AfterMapHook& after_map_hook() noexcept;

}  // namespace dms
