#include "dms/copier.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <utility>

#include "dms/cache.hpp"
#include "dms/errors.hpp"
#include "dms/io.hpp"
#include "dms/mapped.hpp"

namespace dms {

namespace {

// Opening a file costs about as much as moving this many bytes; charging it
// to the slice budget bounds the number of small files handled per step.
constexpr uint64_t kPerPieceCost = 64 * 1024;

// Runs one piece's step, turning the failures that belong to that piece into
// an outcome. Anything else (bad_alloc, logic errors) propagates.
template <typename Body, typename Reset>
bool guarded(PieceOutcome& out, const std::string& src_path, Body&& body, Reset&& reset) {
  try {
    return body();
  } catch (...) {
    piece_failure(out, std::current_exception(), src_path);
  }
  reset();
  return true;
}

}  // namespace

File create_new(const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd >= 0) return File::adopt(fd, path);
  if (errno == EEXIST) return File();
  throw_errno(errno, "open", path);
}

void piece_failure(PieceOutcome& out, const std::exception_ptr& ep, const std::string& src_path) {
  try {
    std::rethrow_exception(ep);
  } catch (const SystemError& e) {
    out.status = PieceStatus::OsError;
    out.err = e.code().value();
    out.call = e.call();
    out.path = e.path();
    out.message = e.what();
  } catch (const SourceChangedError& e) {
    out.status = PieceStatus::SourceChanged;
    out.path = src_path;
    out.message = e.what();
  } catch (const IntegrityError& e) {
    out.status = PieceStatus::Mismatch;
    out.path = src_path;
    out.message = e.what();
  }
}

Digest read_back(const File& f, uint64_t size, std::vector<unsigned char>& buffer) {
  Hasher hasher;
  if (!hash_file_range(f, 0, size, hasher, buffer))
    throw IntegrityError(f.path() + ": shorter than its " + std::to_string(size) + " bytes when read back");
  return hasher.digest();
}

void set_metadata(const File& f, uint32_t mode, int64_t uid, int64_t gid, int64_t atime_ns, int64_t mtime_ns) {
  // An owner that already matches (root copying root's files, a user copying their own) is
  // not set again: an fstat costs less than an fchown, which also dirties the inode.
  if (uid >= 0) {
    struct stat st = stat_of(f);
    bool same = st.st_uid == static_cast<uid_t>(uid) && (gid < 0 || st.st_gid == static_cast<gid_t>(gid));
    if (!same && ::fchown(f.fd(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0)
      throw_errno(errno, "fchown", f.path());
  }
  if (::fchmod(f.fd(), static_cast<mode_t>(mode)) != 0) throw_errno(errno, "fchmod", f.path());
  struct timespec times[2] = {timespec_of(atime_ns), timespec_of(mtime_ns)};
  if (::futimens(f.fd(), times) != 0) throw_errno(errno, "futimens", f.path());
}

void finish_for_publishing(const CopySpec& s, const File& dst, const Digest& source_digest,
                           std::vector<unsigned char>& buffer) {
  if (!(read_back(dst, s.file_size, buffer) == source_digest))
    throw IntegrityError(s.dst + ": staged bytes read back do not match the digest of the source");
  set_metadata(dst, s.mode, s.uid, s.gid, s.atime_ns, s.mtime_ns);
}

std::vector<unsigned char> make_io_buffer(size_t buffer_size) {
  if (buffer_size == 0 || buffer_size > (1u << 30)) throw std::invalid_argument("buffer_size must be in 1..1 GiB");
  return std::vector<unsigned char>(buffer_size);
}

void validate_specs(const std::vector<CopySpec>& specs) {
  for (const CopySpec& s : specs) {
    if (s.offset > s.file_size || s.length > s.file_size - s.offset)
      throw std::invalid_argument("piece [" + std::to_string(s.offset) + ", +" + std::to_string(s.length) +
                                  ") lies outside the file size " + std::to_string(s.file_size) + " of " + s.src);
  }
}

UnitCopier::UnitCopier(std::vector<CopySpec> specs, CopyMethod method, size_t buffer_size)
    : specs_(std::move(specs)), method_(method), buffer_(make_io_buffer(buffer_size)) {
  validate_specs(specs_);
  readahead_ = ReadAhead(source_ranges(specs_), kReadAheadFiles, kReadAheadBytes, /*note_uncached=*/true);
}

std::vector<SourceRange> source_ranges(const std::vector<CopySpec>& specs) {
  std::vector<SourceRange> out;
  out.reserve(specs.size());
  for (const CopySpec& s : specs) out.push_back({s.src, s.offset, s.length});
  return out;
}

void check_source_unchanged(const CopySpec& s, const File& src, const char* when) {
  struct stat st = stat_of(src);
  if (!S_ISREG(st.st_mode)) throw SourceChangedError(s.src + ": no longer a regular file " + when);
  if (static_cast<uint64_t>(st.st_size) != s.file_size || ns_of(st.st_mtim) != s.mtime_ns)
    throw SourceChangedError(s.src + ": changed " + when + " (size " + std::to_string(st.st_size) + ", planned " +
                             std::to_string(s.file_size) + "; mtime_ns " + std::to_string(ns_of(st.st_mtim)) +
                             ", planned " + std::to_string(s.mtime_ns) + ")");
}

void UnitCopier::check_source_unchanged(const char* when) { dms::check_source_unchanged(specs_[next_], src_, when); }

void UnitCopier::check_still_staged() {
  auto now = std::chrono::steady_clock::now();
  if (now - checked_ < kStagedCheckEvery) return;
  checked_ = now;
  const CopySpec& s = specs_[next_];
  struct stat open = stat_of(dst_);
  if (!names_inode(AT_FDCWD, s.dst.c_str(), open.st_dev, open.st_ino))
    throw SystemError(ESTALE, "write (the staging file was renamed or removed meanwhile)", s.dst);
}

void UnitCopier::open_current() {
  const CopySpec& s = specs_[next_];
  src_ = readahead_.open(next_, O_RDONLY | O_NOFOLLOW);
  if (s.check_source) check_source_unchanged("since planning");
  int access = (s.finish ? O_RDWR : O_WRONLY) | O_NOFOLLOW;  // finish reads it back
  // A piece that ends at the file's end and creates the staging file gives it its size by
  // writing it: no ftruncate (one system call fewer per small file). Holes written as holes
  // (sparse) may not reach the end, so those are truncated as before.
  bool sized_by_writing = s.offset + s.length == s.file_size && !s.sparse;
  dst_ = sized_by_writing ? create_new(s.dst, access, 0600) : File();
  if (!dst_) {
    dst_ = File(s.dst, access | O_CREAT, 0600);
    // Idempotent: every piece sets the final size, so pieces may run in any
    // order, twice, or concurrently, and a stale longer staging file shrinks.
    truncate_to(dst_, s.file_size);
  }
  hasher_.reset();
  cursor_ = 0;
  checked_ = std::chrono::steady_clock::now();
  open_ = true;
}

bool UnitCopier::advance(uint64_t budget, uint64_t& used) {
  const CopySpec& s = specs_[next_];
  while (cursor_ < s.length) {
    if (budget == 0) return false;
    bool in_kernel = method_ == CopyMethod::CopyFileRange && !s.sparse;
    // The kernel copy needs no buffer: larger blocks, as large as one mapping to hash them.
    size_t block = in_kernel ? kMapWindowBytes : buffer_.size();
    size_t want = static_cast<size_t>(std::min<uint64_t>({block, s.length - cursor_, budget}));
    auto off = static_cast<off_t>(s.offset + cursor_);
    size_t got;
    if (in_kernel) {
      check_still_staged();  // copy_file_range reads and writes in one call: check before it
      try {
        got = copy_file_range_full(src_, off, dst_, off, want);
      } catch (const SystemError& e) {
        if (!is_copy_range_unsupported(e.code().value())) throw;
        method_ = CopyMethod::ReadWrite;  // this kernel/filesystem pair cannot; stay on the portable path
        continue;
      }
      // The digest must be of the source bytes, so hash them where the copy left them,
      // in the page cache, without copying them out (docs/decisions/0003, 0020).
      if (!hash_file_range(src_, static_cast<uint64_t>(off), got, hasher_, buffer_))
        throw SourceChangedError(s.src + ": shrank while being copied");
    } else {
      got = pread_full(src_, buffer_.data(), want, off);
      hasher_.update(buffer_.data(), got);
      check_still_staged();  // the read may have stalled (NFS, a stopped process)
      if (s.sparse)
        pwrite_sparse(dst_, buffer_.data(), got, off);
      else
        pwrite_full(dst_, buffer_.data(), got, off);
    }
    if (got < want)
      throw SourceChangedError(s.src + ": ended at byte " + std::to_string(s.offset + cursor_ + got) +
                               ", the planner saw " + std::to_string(s.file_size) + " bytes");
    // Pages this copy brought into the cache serve nobody once copied (dms/cache.hpp).
    if (readahead_.was_uncached(next_)) drop_cached(src_, static_cast<uint64_t>(off), got);
    cursor_ += got;
    used += got;
    budget -= got;
    bytes_moved_ += got;
  }
  return true;
}

void UnitCopier::finish_current(PieceOutcome& out) {
  const CopySpec& s = specs_[next_];
  if (s.check_source) check_source_unchanged("while being copied");
  // Start writing a large piece back now, without waiting: the syncfs before publishing
  // (transfer or finalize) then finds little left to flush, and the disk writes while the
  // next piece is read (write-behind). Advisory: an error here changes nothing.
  if (s.length >= kWriteBehindBytes)
    ::sync_file_range(dst_.fd(), static_cast<off_t>(s.offset), static_cast<off_t>(s.length), SYNC_FILE_RANGE_WRITE);
  if (s.finish && s.offset == 0 && s.length == s.file_size) finish_for_publishing(s, dst_, hasher_.digest(), buffer_);
  dst_.close();  // reports deferred write errors (NFS, quota)
  src_.close_no_throw();
  open_ = false;
  out.status = PieceStatus::Ok;
  out.digest = hasher_.digest();
}

std::vector<PieceOutcome> UnitCopier::step(uint64_t max_bytes) {
  std::vector<PieceOutcome> outcomes;
  uint64_t used = 0;
  max_bytes = std::max<uint64_t>(max_bytes, 1);
  auto started = std::chrono::steady_clock::now();
  while (!done() && used < max_bytes) {
    if (!open_ && held_up_since(started, used)) break;
    PieceOutcome out;
    out.index = next_;
    bool finished = guarded(
        out, specs_[next_].src,
        [&] {
          if (!open_) {
            open_current();
            used += kPerPieceCost;
          }
          if (!advance(max_bytes > used ? max_bytes - used : 0, used)) return false;
          finish_current(out);
          return true;
        },
        [&] {
          src_.close_no_throw();
          dst_.close_no_throw();
          open_ = false;
        });
    if (!finished) break;
    outcomes.push_back(std::move(out));
    ++next_;
  }
  return outcomes;
}

Verifier::Verifier(std::vector<VerifySpec> specs, size_t buffer_size)
    : specs_(std::move(specs)), buffer_(make_io_buffer(buffer_size)) {}

std::vector<PieceOutcome> Verifier::step(uint64_t max_bytes) {
  std::vector<PieceOutcome> outcomes;
  uint64_t used = 0;
  max_bytes = std::max<uint64_t>(max_bytes, 1);
  while (!done() && used < max_bytes) {
    const VerifySpec& s = specs_[next_];
    PieceOutcome out;
    out.index = next_;
    bool finished = guarded(
        out, s.path,
        [&] {
          if (!open_) {
            file_ = File(s.path, O_RDONLY | O_NOFOLLOW);
            hasher_.reset();
            cursor_ = 0;
            open_ = true;
            used += kPerPieceCost;
          }
          while (cursor_ < s.length) {
            if (used >= max_bytes) return false;
            size_t want = static_cast<size_t>(std::min<uint64_t>({kMapWindowBytes, s.length - cursor_, max_bytes - used}));
            if (!hash_file_range(file_, s.offset + cursor_, want, hasher_, buffer_))
              break;  // short file: the digest below cannot match
            cursor_ += want;
            used += want;
          }
          file_.close_no_throw();
          open_ = false;
          out.digest = hasher_.digest();
          if (cursor_ < s.length || !(out.digest == s.expected)) {
            out.status = PieceStatus::Mismatch;
            out.path = s.path;
            out.message = s.path + ": bytes [" + std::to_string(s.offset) + ", +" + std::to_string(s.length) +
                          ") hash to " + out.digest.hex() + ", expected " + s.expected.hex() +
                          (cursor_ < s.length ? " (file is shorter)" : "");
          }
          return true;
        },
        [&] {
          file_.close_no_throw();
          open_ = false;
        });
    if (!finished) break;
    outcomes.push_back(std::move(out));
    ++next_;
  }
  return outcomes;
}

namespace {
[[noreturn]] void rethrow(const PieceOutcome& o) {
  switch (o.status) {
    case PieceStatus::OsError:
      throw SystemError(o.err, o.call, o.path);
    case PieceStatus::SourceChanged:
      throw SourceChangedError(o.message);
    case PieceStatus::Mismatch:
      throw IntegrityError(o.message);
    case PieceStatus::Refused:
      throw ConfinementError(o.message);
    case PieceStatus::Ok:
      break;
  }
  throw std::logic_error("rethrow of a successful outcome");
}
}  // namespace

Digest copy_range(const std::string& src, const std::string& dst, uint64_t offset, uint64_t length,
                  CopyMethod method) {
  struct stat st {};
  if (::stat(src.c_str(), &st) != 0) throw_errno(errno, "stat", src);
  CopySpec spec{src, dst, offset, length, std::max<uint64_t>(static_cast<uint64_t>(st.st_size), offset + length),
                0, false};
  UnitCopier copier({spec}, method, 1 << 20);
  std::vector<PieceOutcome> all;
  while (!copier.done())
    for (auto& o : copier.step(64ull << 20)) all.push_back(std::move(o));
  if (all.at(0).status != PieceStatus::Ok) rethrow(all[0]);
  return all[0].digest;
}

Digest hash_range(const std::string& path, uint64_t offset, uint64_t length, bool mapped) {
  File f(path, O_RDONLY | O_NONBLOCK);  // a FIFO put in a file's place must not hang the worker
  Hasher h;
  std::vector<unsigned char> buf(static_cast<size_t>(std::min<uint64_t>(length, 1 << 20)) + 1);
  if (mapped) {
    auto size = static_cast<uint64_t>(stat_of(f).st_size);
    uint64_t have = size > offset ? std::min(length, size - offset) : 0;
    if (hash_file_range(f, offset, have, h, buf)) return h.digest();
    h.reset();  // cut while being read: read what is left instead
  }
  uint64_t done = 0;
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    size_t got = pread_full(f, buf.data(), want, static_cast<off_t>(offset + done));
    h.update(buf.data(), got);
    done += got;
    if (got < want) break;
  }
  return h.digest();
}

Digest parse_digest(const std::string& hex) {
  if (hex.size() != 32) throw std::invalid_argument("a digest is 32 hex digits, got " + std::to_string(hex.size()));
  auto word = [&](size_t start) {
    uint64_t v = 0;
    for (size_t i = start; i < start + 16; ++i) {
      char c = hex[i];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) throw std::invalid_argument("not a hex digest: " + hex);
      v = (v << 4) | static_cast<uint64_t>(d);
    }
    return v;
  };
  return Digest{word(0), word(16)};
}

}  // namespace dms
