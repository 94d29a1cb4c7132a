#include "dms/scan.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

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

}  // namespace

DirScan scan_directory(const std::string& dir, const std::string& dest_dir) {
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
                     (there.st_mode & 07777) == (st.st_mode & 07777);
    }
    out.entries.push_back(std::move(e));
  }
  return out;
}

}  // namespace dms
