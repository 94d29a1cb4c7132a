#include "dms/io.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <linux/falloc.h>
#include <sys/stat.h>

#include "dms/errors.hpp"

namespace dms {

namespace {
ssize_t sys_copy_file_range(int in, off_t* in_off, int out, off_t* out_off, size_t n, unsigned int flags) {
  return ::copy_file_range(in, in_off, out, out_off, n, flags);
}
}  // namespace

IoOps& io_ops() noexcept {
  static IoOps ops{::pread, ::pwrite, sys_copy_file_range, ::ftruncate};
  return ops;
}

size_t pread_full(const File& f, void* buf, size_t n, off_t off) {
  auto* p = static_cast<unsigned char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = io_ops().pread(f.fd(), p + done, n - done, off + static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "pread", f.path());
    }
    if (r == 0) break;  // end of file
    done += static_cast<size_t>(r);
  }
  return done;
}

void pwrite_full(const File& f, const void* buf, size_t n, off_t off) {
  const auto* p = static_cast<const unsigned char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = io_ops().pwrite(f.fd(), p + done, n - done, off + static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "pwrite", f.path());
    }
    // A zero-byte write of a non-zero request means no progress is possible
    // (a full device that does not say so); report it as ENOSPC, never spin.
    if (r == 0) throw_errno(ENOSPC, "pwrite", f.path());
    done += static_cast<size_t>(r);
  }
}

size_t copy_file_range_full(const File& src, off_t src_off, const File& dst, off_t dst_off, size_t n) {
  size_t done = 0;
  while (done < n) {
    off_t in = src_off + static_cast<off_t>(done);
    off_t out = dst_off + static_cast<off_t>(done);
    ssize_t r = io_ops().copy_file_range(src.fd(), &in, dst.fd(), &out, n - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "copy_file_range", dst.path());
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

bool is_copy_range_unsupported(int err) noexcept {
  return err == EXDEV || err == EOPNOTSUPP || err == ENOSYS || err == EINVAL || err == EBADF;
}

bool all_zero(const void* buf, size_t n) noexcept {
  auto* p = static_cast<const unsigned char*>(buf);
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

namespace {
void write_run(const File& f, const unsigned char* p, size_t n, off_t off, bool zero) {
  if (n == 0) return;
  if (zero) {
    if (::fallocate(f.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, static_cast<off_t>(n)) == 0) return;
    if (errno != EOPNOTSUPP && errno != ENOSYS) throw_errno(errno, "fallocate", f.path());
  }
  pwrite_full(f, p, n, off);
}
}  // namespace

void pwrite_sparse(const File& f, const void* buf, size_t n, off_t off) {
  // Runs of 4 KiB blocks (the usual file system block) that are all zero become
  // holes; the runs in between are written as they are.
  constexpr size_t kBlock = 4096;
  auto* p = static_cast<const unsigned char*>(buf);
  size_t run_start = 0;
  bool run_zero = false;
  for (size_t at = 0; at < n; at += kBlock) {
    size_t len = std::min(kBlock, n - at);
    bool zero = all_zero(p + at, len);
    if (at == 0) {
      run_zero = zero;
    } else if (zero != run_zero) {
      write_run(f, p + run_start, at - run_start, off + static_cast<off_t>(run_start), run_zero);
      run_start = at;
      run_zero = zero;
    }
  }
  write_run(f, p + run_start, n - run_start, off + static_cast<off_t>(run_start), run_zero);
}

void truncate_to(const File& f, uint64_t size) {
  int rc;
  do {
    rc = io_ops().ftruncate(f.fd(), static_cast<off_t>(size));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) throw_errno(errno, "ftruncate", f.path());
}

void sync_filesystem(const std::string& path) {
  File dir(path, O_RDONLY | O_DIRECTORY);
  if (::syncfs(dir.fd()) != 0) throw_errno(errno, "syncfs", path);
}

int64_t ns_of(const struct timespec& t) noexcept {
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

struct timespec timespec_of(int64_t ns) noexcept {
  int64_t sec = ns / 1'000'000'000;
  int64_t rem = ns % 1'000'000'000;
  if (rem < 0) {
    rem += 1'000'000'000;
    sec -= 1;
  }
  return {static_cast<time_t>(sec), static_cast<long>(rem)};
}

bool names_inode(int dirfd, const char* name, dev_t dev, ino_t ino) noexcept {
  struct stat st {};
  return ::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev && st.st_ino == ino;
}

struct stat stat_of(const File& f) {
  struct stat st {};
  if (::fstat(f.fd(), &st) != 0) throw_errno(errno, "fstat", f.path());
  return st;
}

}  // namespace dms
