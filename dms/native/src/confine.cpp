#include "dms/confine.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "dms/errors.hpp"
#include "dms/io.hpp"
#include "dms/protocol.hpp"

namespace dms {

namespace {

std::string normalize_root(std::string root) {
  if (root.empty() || root.front() != '/') throw std::invalid_argument("a root must be an absolute path: '" + root + "'");
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  wire::check_wire_path(root == "/" ? std::string_view("/x") : std::string_view(root));
  return root;
}

}  // namespace

bool is_staging_name(std::string_view name) noexcept {
  constexpr std::string_view suffix = ".partial";
  return name.size() > 1 + 5 + suffix.size() && name.front() == '.' && name.ends_with(suffix) &&
         name.find(".dms-") != std::string_view::npos;
}

Roots::Roots(std::vector<std::string> roots) {
  for (auto& r : roots) roots_.push_back(normalize_root(std::move(r)));
}

std::string Roots::root_of(std::string_view path) const {
  for (const std::string& r : roots_) {
    if (r == "/") return r;
    if (path.size() > r.size() && path.starts_with(r) && path[r.size()] == '/') return r;
  }
  return "";
}

File Roots::open_existing(const std::string& path) const noexcept {
  try {
    wire::check_wire_path(path);
    std::string root = root_of(path);
    if (root.empty()) return File();
    File dir(root, O_RDONLY | O_DIRECTORY);
    size_t slash = path.rfind('/');
    // A staging file is never data, and a peer can make one of any size (a PUT truncates it
    // to the size it names): no reader opens one, let alone hashes it.
    if (is_staging_name(std::string_view(path).substr(slash + 1))) return File();
    size_t start = root == "/" ? 1 : root.size() + 1;
    while (start < slash) {
      size_t end = path.find('/', start);
      int fd = ::openat(dir.fd(), path.substr(start, end - start).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return File();
      dir = File::adopt(fd, path.substr(0, end));
      start = end + 1;
    }
    int fd = ::openat(dir.fd(), path.substr(slash + 1).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return File();
    File f = File::adopt(fd, path);
    struct stat st {};
    if (::fstat(f.fd(), &st) != 0 || !S_ISREG(st.st_mode)) return File();
    return f;
  } catch (const std::exception&) {
    return File();
  }
}

bool StagingFile::still_staged() const noexcept { return names_inode(dir.fd(), name.c_str(), dev, ino); }

StagingFile Roots::open_staging_file(const std::string& path) const {
  try {
    wire::check_wire_path(path);
  } catch (const ProtocolError& e) {
    throw ConfinementError(path + ": refused: " + e.what());
  }
  std::string root = root_of(path);
  if (root.empty()) throw ConfinementError(path + ": refused: outside every allowed root");
  size_t slash = path.rfind('/');
  std::string_view name = std::string_view(path).substr(slash + 1);
  if (!is_staging_name(name)) throw ConfinementError(path + ": refused: not a DMS staging file name");

  File dir(root, O_RDONLY | O_DIRECTORY);
  size_t start = root == "/" ? 1 : root.size() + 1;
  while (start < slash) {
    size_t end = path.find('/', start);
    std::string part = path.substr(start, end - start);
    std::string so_far = path.substr(0, end);
    int fd;
    do {
      fd = ::openat(dir.fd(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == ENOENT) {
      if (::mkdirat(dir.fd(), part.c_str(), 0755) != 0 && errno != EEXIST) throw_errno(errno, "mkdir", so_far);
      do {
        fd = ::openat(dir.fd(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      } while (fd < 0 && errno == EINTR);
    }
    if (fd < 0) {
      if (errno == ELOOP || errno == ENOTDIR)
        throw ConfinementError(path + ": refused: " + so_far + " is a symlink or not a directory");
      throw_errno(errno, "open", so_far);
    }
    File next;
    next = File::adopt(fd, so_far);
    dir = std::move(next);
    start = end + 1;
  }
  int fd;
  do {
    fd = ::openat(dir.fd(), std::string(name).c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ELOOP) throw ConfinementError(path + ": refused: the staging file is a symlink");
    throw_errno(errno, "open", path);
  }
  StagingFile out;
  out.file = File::adopt(fd, path);
  struct stat st {};
  if (::fstat(out.file.fd(), &st) != 0) throw_errno(errno, "fstat", path);
  if (!S_ISREG(st.st_mode)) throw ConfinementError(path + ": refused: not a regular file");
  out.dir = std::move(dir);
  out.name = std::string(name);
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  return out;
}

}  // namespace dms
