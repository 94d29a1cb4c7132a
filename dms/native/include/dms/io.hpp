// EINTR- and short-I/O-safe wrappers, written once (folly/FileUtil.h's
// readFull/writeFull idea). The raw calls go through io_ops() so the unit
// tests can inject short reads, EINTR and ENOSPC without a special kernel.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "dms/file.hpp"

namespace dms {

struct IoOps {
  ssize_t (*pread)(int, void*, size_t, off_t);
  ssize_t (*pwrite)(int, const void*, size_t, off_t);
  ssize_t (*copy_file_range)(int, off_t*, int, off_t*, size_t, unsigned int);
  int (*ftruncate)(int, off_t);
};

// The process-wide table; production code never changes it.
IoOps& io_ops() noexcept;

// Restores the table on scope exit; for tests only.
class ScopedIoOps {
 public:
  ScopedIoOps() noexcept : saved_(io_ops()) {}
  ~ScopedIoOps() { io_ops() = saved_; }
  ScopedIoOps(const ScopedIoOps&) = delete;
  ScopedIoOps& operator=(const ScopedIoOps&) = delete;

 private:
  IoOps saved_;
};

// Reads up to n bytes at off, retrying EINTR and short reads. Returns fewer
// than n only at end of file.
size_t pread_full(const File& f, void* buf, size_t n, off_t off);

// Writes exactly n bytes at off or throws (ENOSPC, EIO, ...).
void pwrite_full(const File& f, const void* buf, size_t n, off_t off);

// Kernel-side copy of up to n bytes; returns fewer only at the source's end.
// Throws SystemError; callers treat EXDEV/EOPNOTSUPP/ENOSYS/EINVAL as "not
// here" and fall back to pread/pwrite (see is_copy_range_unsupported).
size_t copy_file_range_full(const File& src, off_t src_off, const File& dst, off_t dst_off, size_t n);
bool is_copy_range_unsupported(int err) noexcept;

void truncate_to(const File& f, uint64_t size);

// rsync -S: writes buf at off, except that an all-zero buffer becomes a hole
// (fallocate PUNCH_HOLE, which also clears stale bytes of a reused staging
// file); where punching is not supported, the zeros are written.
void pwrite_sparse(const File& f, const void* buf, size_t n, off_t off);
bool all_zero(const void* buf, size_t n) noexcept;

// syncfs(2) on the filesystem holding `path`: one call flushes a whole batch
// of small files, where one fsync per file would cost a journal commit each.
void sync_filesystem(const std::string& path);
struct stat stat_of(const File& f);
// Whether `name` (relative to `dirfd`, or a path with AT_FDCWD; not followed) is the inode
// (dev, ino): a writer's check that its staging name still refers to the file it holds.
bool names_inode(int dirfd, const char* name, dev_t dev, ino_t ino) noexcept;
// A stat time (st_mtim, st_atim) in nanoseconds since the epoch.
int64_t ns_of(const struct timespec& t) noexcept;
// The timespec of `ns` nanoseconds since the epoch; before 1970 too (tv_nsec stays in
// [0, 1e9), as utimensat requires: truncating division would make it negative).
struct timespec timespec_of(int64_t ns) noexcept;

}  // namespace dms
