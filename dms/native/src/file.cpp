#include "dms/file.hpp"

#include <cerrno>
#include <unistd.h>
#include <utility>

#include "dms/errors.hpp"

namespace dms {

File::File(std::string path, int flags, mode_t mode) : path_(std::move(path)) {
  int fd;
  do {
    fd = ::open(path_.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno(errno, "open", path_);
  fd_ = fd;
}

File File::adopt(int fd, std::string path) noexcept {
  File f;
  f.fd_ = fd;
  f.path_ = std::move(path);
  return f;
}

File::File(File&& other) noexcept : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close_no_throw();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

File::~File() { close_no_throw(); }

void File::close() {
  if (fd_ < 0) return;
  // POSIX leaves the fd state unspecified after EINTR from close; Linux always
  // releases it, so never retry (retrying could close someone else's fd).
  int rc = ::close(std::exchange(fd_, -1));
  if (rc != 0 && errno != EINTR) throw_errno(errno, "close", path_);
}

void File::close_no_throw() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

}  // namespace dms
