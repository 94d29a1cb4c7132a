// RAII owner of one file descriptor, after folly/File.h: move-only, closes on
// destruction without throwing, and close() reports the error of a close that
// matters (NFS and Lustre report deferred write errors there).
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <string>

namespace dms {

class File {
 public:
  File() noexcept = default;
  // Opens `path`; throws SystemError("open", path) on failure. O_CLOEXEC is
  // always added so a forked worker child never inherits our descriptors.
  File(std::string path, int flags, mode_t mode = 0600);
  // Takes ownership of an already open descriptor.
  static File adopt(int fd, std::string path) noexcept;
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  int fd() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

  void close();                  // throws SystemError("close", path)
  void close_no_throw() noexcept;

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace dms
