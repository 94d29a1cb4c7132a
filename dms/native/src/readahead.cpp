#include "dms/readahead.hpp"

#include <fcntl.h>

#include <algorithm>

#include "dms/cache.hpp"

namespace dms {

ReadAhead::ReadAhead(std::vector<SourceRange> ranges, size_t max_files, uint64_t max_bytes, bool note_uncached)
    : ranges_(std::move(ranges)), max_files_(max_files), max_bytes_(max_bytes) {
  if (note_uncached) uncached_.assign(ranges_.size(), false);
}

void ReadAhead::advise(const File& f, size_t index) {
  const SourceRange& r = ranges_[index];
  // The last quarter only: reading the range before this one (the previous piece of the
  // same file) makes the kernel read ahead into this one's head, up to about 1.5 times
  // read_ahead_kb (decision 0021); what someone else cached
  // would lie along the whole range.
  if (!uncached_.empty() && r.length >= kDropMinBytes)
    uncached_[index] = range_uncached(f, r.offset + r.length - r.length / 4, r.length / 4);
  ::posix_fadvise(f.fd(), static_cast<off_t>(r.offset), static_cast<off_t>(r.length), POSIX_FADV_WILLNEED);
}

File ReadAhead::open(size_t index, int flags) {
  flags_ = flags;
  File taken;
  while (!ahead_.empty() && ahead_.front().first <= index) {
    auto [i, file] = std::move(ahead_.front());
    ahead_.pop_front();
    bytes_ahead_ -= ranges_[i].length;
    if (i == index) taken = std::move(file);  // an earlier index was skipped: its descriptor just closes
  }
  fill(index);
  if (taken) return taken;
  const SourceRange& r = ranges_.at(index);
  File fresh(r.path, flags | O_NONBLOCK);
  advise(fresh, index);
  return fresh;
}

void ReadAhead::fill(size_t after) {
  next_ = std::max(next_, after + 1);
  while (next_ < ranges_.size() && ahead_.size() < max_files_ && bytes_ahead_ < max_bytes_) {
    const SourceRange& r = ranges_[next_];
    // A failure here is left to the real open to report.
    int fd = ::open(r.path.c_str(), flags_ | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      ahead_.emplace_back(next_, File::adopt(fd, r.path));
      advise(ahead_.back().second, next_);
      bytes_ahead_ += r.length;
    }
    ++next_;
  }
}

}  // namespace dms
