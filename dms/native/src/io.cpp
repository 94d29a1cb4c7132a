#include "dms/io.hpp"

#include <fcntl.h>

#include <cerrno>
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

struct stat stat_of(const File& f) {
  struct stat st {};
  if (::fstat(f.fd(), &st) != 0) throw_errno(errno, "fstat", f.path());
  return st;
}

}  // namespace dms
