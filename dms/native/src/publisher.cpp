#include "dms/publisher.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>

#include "dms/errors.hpp"
#include "dms/file.hpp"
#include "dms/io.hpp"

namespace dms {

namespace {

// Whether `f` is a regular file of `size` bytes whose digest is `expected`.
bool holds(const File& f, uint64_t size, const Digest& expected, std::vector<unsigned char>& buffer) {
  struct stat st = stat_of(f);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != size) return false;
  return read_back(f, size, buffer) == expected;
}

// A duplicate run of the same unit (redelivery, a janitor's re-dispatch) may have renamed
// the staging file already: the file is published if its final name holds the same bytes.
bool published_by_another_run(const PublishSpec& s, std::vector<unsigned char>& buffer) {
  int fd = ::open(s.final_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  File f = File::adopt(fd, s.final_path);
  return holds(f, s.size, s.expected, buffer);
}

// True when the file must still be renamed, false when it is in place already.
bool verify_and_set_metadata(const PublishSpec& s, std::vector<unsigned char>& buffer) {
  if (s.verified) return true;
  File f;
  try {
    f = File(s.staged, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (const SystemError& e) {
    if (e.code().value() == ENOENT && published_by_another_run(s, buffer)) return false;
    throw;
  }
  if (!holds(f, s.size, s.expected, buffer))
    throw IntegrityError(s.staged + ": staged bytes do not match the digest of the source (" + std::to_string(s.size) +
                         " bytes expected, digest " + s.expected.hex() + ")");
  set_metadata(f, s.mode, s.uid, s.gid, s.atime_ns, s.mtime_ns);
  f.close();
  return true;
}

}  // namespace

std::vector<PieceOutcome> publish_whole_files(const std::vector<PublishSpec>& specs, const std::string& sync_path,
                                              size_t buffer_size) {
  std::vector<unsigned char> buffer = make_io_buffer(buffer_size);
  std::vector<PieceOutcome> outs(specs.size());
  std::vector<bool> rename(specs.size(), false);
  for (size_t i = 0; i < specs.size(); ++i) {
    outs[i].index = i;
    try {
      rename[i] = verify_and_set_metadata(specs[i], buffer);
      outs[i].digest = specs[i].expected;
    } catch (...) {  // IntegrityError becomes Mismatch
      piece_failure(outs[i], std::current_exception(), specs[i].staged);
    }
  }
  if (!sync_path.empty()) sync_filesystem(sync_path);  // throws: nothing is renamed then
  for (size_t i = 0; i < specs.size(); ++i) {
    if (outs[i].status != PieceStatus::Ok || !rename[i]) continue;
    if (::rename(specs[i].staged.c_str(), specs[i].final_path.c_str()) == 0) continue;
    int err = errno;
    try {
      if (err == ENOENT && published_by_another_run(specs[i], buffer)) continue;
    } catch (...) {  // reading the final name failed: the rename's own error is reported
    }
    piece_failure(outs[i], std::make_exception_ptr(SystemError(err, "rename", specs[i].final_path)),
                  specs[i].final_path);
  }
  return outs;
}

}  // namespace dms
