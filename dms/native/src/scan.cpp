#include "dms/scan.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "dms/file.hpp"
#include "dms/io.hpp"

namespace dms {

namespace {

struct CloseDir {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};

int open_directory(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// The extended attributes of `path` (not followed) as sorted (name, value) pairs; empty where
// unsupported. Names and values are read by path (/proc/self/fd/N/name: no open of a fifo).
std::vector<std::pair<std::string, std::string>> xattrs_of(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n <= 0) return out;
  std::string names(static_cast<size_t>(n), '\0');
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n <= 0) return out;
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    ssize_t len = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    std::string value(len > 0 ? static_cast<size_t>(len) : 0, '\0');
    if (len > 0) {
      len = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      value.resize(len > 0 ? static_cast<size_t>(len) : 0);
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string fd_path(int dirfd, const char* name) {
  return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
}

}  // namespace

DirScan scan_directory(const std::string& dir, const std::string& dest_dir, bool xattrs) {
  static const bool as_root = ::geteuid() == 0;  // only root sets owners (rsync -o -g)
  DirScan out;
  int fd = open_directory(dir);
  if (fd < 0) {
    out.err = errno;
    return out;
  }
  std::unique_ptr<DIR, CloseDir> listing(::fdopendir(fd));
  if (!listing) {
    out.err = errno;
    ::close(fd);
    return out;
  }
  File dest;  // closed on return
  if (!dest_dir.empty()) {
    int dfd = open_directory(dest_dir);
    if (dfd >= 0) dest = File::adopt(dfd, dest_dir);
  }
  for (;;) {
    errno = 0;
    const struct dirent* d = ::readdir(listing.get());
    if (d == nullptr) {
      if (errno != 0) {
        out.err = errno;
        out.entries.clear();
      }
      break;
    }
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    ScanEntry e;
    e.name = d->d_name;
    struct stat st {};
    if (::fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      e.err = errno;
      out.entries.push_back(std::move(e));
      continue;
    }
    e.mode = st.st_mode;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = static_cast<uint64_t>(st.st_size);
    e.blocks = static_cast<uint64_t>(st.st_blocks);
    e.nlink = st.st_nlink;
    e.dev = st.st_dev;
    e.ino = st.st_ino;
    e.rdev = st.st_rdev;
    e.mtime_ns = ns_of(st.st_mtim);
    e.atime_ns = ns_of(st.st_atim);
    if (dest && S_ISREG(st.st_mode)) {
      struct stat there {};
      e.up_to_date = ::fstatat(dest.fd(), d->d_name, &there, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(there.st_mode) &&
                     there.st_size == st.st_size && ns_of(there.st_mtim) == e.mtime_ns &&
                     (there.st_mode & 07777) == (st.st_mode & 07777) &&
                     (!as_root || (there.st_uid == st.st_uid && there.st_gid == st.st_gid));
      if (e.up_to_date && xattrs)
        e.up_to_date = xattrs_of(fd_path(fd, d->d_name)) == xattrs_of(fd_path(dest.fd(), d->d_name));
    }
    out.entries.push_back(std::move(e));
  }
  return out;
}

}  // namespace dms
