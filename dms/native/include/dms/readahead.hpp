// ReadAhead: opens the sources of the pieces after the one being moved and asks
// the kernel to start reading them (posix_fadvise WILLNEED), so one worker keeps
// many reads in flight. Small files on a cold cache are bound by the disk's
// latency, one read at a time; with reads queued ahead the copy finds them in
// the page cache (docs/decisions/0014-read-ahead-and-publish-in-transfer.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "dms/file.hpp"

namespace dms {

struct SourceRange {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
};

class ReadAhead {
 public:
  // At most `max_files` descriptors and `max_bytes` of advised reads are kept ahead.
  // With `note_uncached`, whether each range of kDropMinBytes or more was out of
  // the page cache is noted right before it is advised (was_uncached): whether
  // its last quarter was, since reading the range before it (the previous piece
  // of the same file) makes the kernel read ahead into its head.
  ReadAhead(std::vector<SourceRange> ranges, size_t max_files, uint64_t max_bytes, bool note_uncached = false);
  ReadAhead() = default;

  // The source of piece `index`, opened with `flags` (O_CLOEXEC and O_NONBLOCK added:
  // a source swapped for a fifo must not block the open; for a regular file O_NONBLOCK
  // changes nothing): the descriptor opened ahead if there is one, else a fresh open
  // (which throws SystemError like File).
  // Pieces after it are opened and advised up to the window. Indexes must not decrease.
  File open(size_t index, int flags);
  size_t files_ahead() const noexcept { return ahead_.size(); }
  // True when range `index` (opened already) was out of the page cache before
  // this read-ahead asked for it: the reader drops it once done (dms/cache.hpp).
  bool was_uncached(size_t index) const noexcept { return index < uncached_.size() && uncached_[index]; }

 private:
  void fill(size_t after);
  void advise(const File& f, size_t index);
  std::vector<SourceRange> ranges_;
  size_t max_files_ = 0;
  uint64_t max_bytes_ = 0;
  std::deque<std::pair<size_t, File>> ahead_;  // opened and advised, in index order
  size_t next_ = 0;                            // first index not yet looked at
  uint64_t bytes_ahead_ = 0;
  int flags_ = 0;
  std::vector<bool> uncached_;  // empty unless note_uncached
};

}  // namespace dms
