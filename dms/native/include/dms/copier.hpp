// UnitCopier and Verifier: the two sliced workers the Python tasks drive.
// Both take a list of pieces, do at most about `max_bytes` of I/O per step()
// (one call into C++ with the GIL released), and report each finished piece
// as a value, so one bad file never aborts the rest of a unit. Exceptions
// escape only for misuse (bad arguments) and out-of-memory.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "dms/checksum.hpp"
#include "dms/file.hpp"
#include "dms/readahead.hpp"

namespace dms {

enum class CopyMethod { ReadWrite = 0, CopyFileRange = 1 };

// Values are shared with _core.pyx's STATUS_* constants.
enum class PieceStatus { Ok = 0, OsError = 1, SourceChanged = 2, Mismatch = 3, Refused = 4 };

struct CopySpec {
  std::string src;
  std::string dst;             // staging file; created 0600 if missing
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t file_size = 0;      // the size the planner saw; dst is truncated to it
  int64_t mtime_ns = 0;        // the mtime the planner saw
  bool check_source = true;    // refuse a source whose size or mtime changed
  bool sparse = false;         // zero blocks become holes (rsync -S); forces read/write
  // A piece that is the whole file may be finished here for publishing: once written, the
  // staged bytes are read back through the same descriptor and must hash to the source's
  // digest (else Mismatch), then owner (uid >= 0), mode and times are set on it. Only the
  // rename is left (publish_whole_files with `verified`).
  bool finish = false;
  uint32_t mode = 0600;
  int64_t uid = -1;
  int64_t gid = -1;
  int64_t atime_ns = 0;
};

struct PieceOutcome {
  size_t index = 0;            // position in the spec list
  PieceStatus status = PieceStatus::Ok;
  Digest digest;               // of the bytes moved (Ok) or read back (Mismatch)
  int err = 0;                 // errno, for OsError
  std::string call;            // the failing system call, for OsError
  std::string message;         // human-readable reason
  std::string path;            // the path the error is about
};

class UnitCopier {
 public:
  UnitCopier(std::vector<CopySpec> specs, CopyMethod method, size_t buffer_size);
  std::vector<PieceOutcome> step(uint64_t max_bytes);
  bool done() const noexcept { return next_ >= specs_.size(); }
  uint64_t bytes_moved() const noexcept { return bytes_moved_; }  // so far, pieces in progress included
  CopyMethod method() const noexcept { return method_; }

 private:
  bool advance(uint64_t budget, uint64_t& used);  // true when the current piece finished
  void open_current();
  void check_source_unchanged(const char* when);
  void finish_current(PieceOutcome& out);
  void check_still_staged();  // before every write (kStagedCheckEvery)
  std::vector<CopySpec> specs_;
  CopyMethod method_;
  std::vector<unsigned char> buffer_;
  size_t next_ = 0;
  bool open_ = false;
  File src_, dst_;
  ReadAhead readahead_;
  uint64_t cursor_ = 0;
  Hasher hasher_;
  uint64_t bytes_moved_ = 0;
  std::chrono::steady_clock::time_point checked_;
};

// A writer (the copier, the receiver) checks before every write that its staging name still
// refers to the file it writes (names_inode, one fstatat): meanwhile a duplicate run of its
// unit may have published the file (docs/decisions/0019). Duplicates of a unit that is still
// running do happen (messages put back after a Redis restart, lanes restarted, a janitor's
// re-dispatch): checked at most once a second, a late duplicate wrote for up to a second into
// a file already published (seen as a published file's mtime changed after SUCCEEDED). The
// cost is one lookup per write buffer (a MiB or more); the window left is the microseconds
// between the check and the write.
constexpr auto kStagedCheckEvery = std::chrono::seconds(0);

// A step held up this long (a stalled read, a stopped process or sender) returns to its
// caller before it opens another piece (held_up_since).
constexpr auto kHeldUpAfter = std::chrono::seconds(1);

// Whether a step that began at `started` and has done some work should end before it opens
// another piece: one held up this long returns to its caller, whose check between slices
// (cancelled, resumed, ended) then runs before anything new is created for the request.
inline bool held_up_since(std::chrono::steady_clock::time_point started, uint64_t used) {
  return used > 0 && std::chrono::steady_clock::now() - started >= kHeldUpAfter;
}

// Pieces at least this large have their writeback started as soon as they are written
// (sync_file_range(SYNC_FILE_RANGE_WRITE): write-behind, by the copier and the receiver).
constexpr uint64_t kWriteBehindBytes = 1024 * 1024;

// How far ahead the copier and the sender open and advise sources (ReadAhead).
constexpr size_t kReadAheadFiles = 128;
constexpr uint64_t kReadAheadBytes = 64ull << 20;
std::vector<SourceRange> source_ranges(const std::vector<CopySpec>& specs);

struct VerifySpec {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
  Digest expected;
};

class Verifier {
 public:
  Verifier(std::vector<VerifySpec> specs, size_t buffer_size);
  std::vector<PieceOutcome> step(uint64_t max_bytes);
  bool done() const noexcept { return next_ >= specs_.size(); }

 private:
  std::vector<VerifySpec> specs_;
  std::vector<unsigned char> buffer_;
  size_t next_ = 0;
  bool open_ = false;
  File file_;
  uint64_t cursor_ = 0;
  Hasher hasher_;
};

// Turns a failure that belongs to one piece (SystemError: errno; SourceChangedError)
// into `out`; rethrows anything else (bad_alloc, logic errors).
void piece_failure(PieceOutcome& out, const std::exception_ptr& ep, const std::string& src_path);

// The digest of the first `size` bytes of `f`, read back in `buffer`-sized preads;
// IntegrityError naming the file if it is shorter.
Digest read_back(const File& f, uint64_t size, std::vector<unsigned char>& buffer);
// Owner (when uid >= 0), mode and times, set on the open descriptor `f`.
void set_metadata(const File& f, uint32_t mode, int64_t uid, int64_t gid, int64_t atime_ns, int64_t mtime_ns);

// For a CopySpec with `finish`: read the staged file back through `dst`, compare with the
// source's digest (IntegrityError), then set owner, mode and times on `dst`.
void finish_for_publishing(const CopySpec& s, const File& dst, const Digest& source_digest,
                           std::vector<unsigned char>& buffer);

// Creates `path` (flags | O_CREAT | O_EXCL); an empty File, not an error, when the name
// exists already (a symlink there counts as existing: O_EXCL never follows one).
File create_new(const std::string& path, int flags, mode_t mode);

// A slice buffer of buffer_size bytes (1..1 GiB, else invalid_argument).
std::vector<unsigned char> make_io_buffer(size_t buffer_size);
// Every piece must lie inside its file; throws invalid_argument naming the bad one.
void validate_specs(const std::vector<CopySpec>& specs);

// Throws SourceChangedError if `src` (opened from s.src) no longer has the
// size and mtime the planner saw: copying on would publish a mix of versions.
void check_source_unchanged(const CopySpec& s, const File& src, const char* when);

// One-shot helpers: they throw instead of reporting, for callers that want
// exceptions (tests, tools). Both are bounded by the range they are given.
Digest copy_range(const std::string& src, const std::string& dst, uint64_t offset, uint64_t length,
                  CopyMethod method);
Digest hash_range(const std::string& path, uint64_t offset, uint64_t length, bool mapped = true);

Digest parse_digest(const std::string& hex);  // throws std::invalid_argument

}  // namespace dms
