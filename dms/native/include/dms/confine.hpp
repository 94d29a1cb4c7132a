// Confinement of the receiver's writes: a destination path is accepted only
// if it lies under one of the configured roots, every directory below the
// root is a real directory (never a symlink: each component is opened with
// O_NOFOLLOW relative to its parent's descriptor, so a symlink swapped in
// mid-transfer cannot redirect a write), and its name is a DMS staging file
// (".<name>.dms-<tag>.partial"), so even an authenticated sender can never
// overwrite a published file. The roots themselves are resolved once, as the
// operator wrote them (a root may sit behind a site's symlink).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "dms/file.hpp"

namespace dms {

// An open staging file and the directory that names it. A writer checks still_staged()
// before each write: once finalize has renamed the file into place, a late write (a sender
// that was stopped in the middle of a piece and woke up) must not change a published file.
struct StagingFile {
  File file;
  File dir;
  std::string name;
  dev_t dev = 0;
  ino_t ino = 0;
  // Whether the staging name still refers to `file` (false once it was renamed or removed).
  bool still_staged() const noexcept;
};

class Roots {
 public:
  explicit Roots(std::vector<std::string> roots);  // absolute paths; throws invalid_argument
  const std::vector<std::string>& paths() const noexcept { return roots_; }

  // The root `path` lies strictly under, or "" if none.
  std::string root_of(std::string_view path) const;

  // Opens (creating it 0600 if missing) the staging file `path` for writing,
  // creating missing directories 0755 below its root. Throws ConfinementError
  // for a path that may not be written, SystemError for an I/O failure.
  File open_staging(const std::string& path) const { return open_staging_file(path).file; }
  // The same, with what StagingFile::still_staged needs.
  StagingFile open_staging_file(const std::string& path) const;

  // Opens an existing regular file below a root for reading, every directory below
  // the root (and the file) without following symlinks; an invalid File if the path
  // is outside the roots, missing, a symlink, not a regular file or a staging name
  // (never data, and of any size a peer chose). Never creates.
  File open_existing(const std::string& path) const noexcept;

 private:
  std::vector<std::string> roots_;
};

// Whether a file name has the staging form ".<name>.dms-<tag>.partial".
bool is_staging_name(std::string_view name) noexcept;

}  // namespace dms
