#include "dms/readahead.hpp"

#include <fcntl.h>

#include <algorithm>

namespace dms {

ReadAhead::ReadAhead(std::vector<SourceRange> ranges, size_t max_files, uint64_t max_bytes)
    : ranges_(std::move(ranges)), max_files_(max_files), max_bytes_(max_bytes) {}

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
  ::posix_fadvise(fresh.fd(), static_cast<off_t>(r.offset), static_cast<off_t>(r.length), POSIX_FADV_WILLNEED);
  return fresh;
}

void ReadAhead::fill(size_t after) {
  next_ = std::max(next_, after + 1);
  while (next_ < ranges_.size() && ahead_.size() < max_files_ && bytes_ahead_ < max_bytes_) {
    const SourceRange& r = ranges_[next_];
    // A failure here is left to the real open to report.
    int fd = ::open(r.path.c_str(), flags_ | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      ::posix_fadvise(fd, static_cast<off_t>(r.offset), static_cast<off_t>(r.length), POSIX_FADV_WILLNEED);
      ahead_.emplace_back(next_, File::adopt(fd, r.path));
      bytes_ahead_ += r.length;
    }
    ++next_;
  }
}

}  // namespace dms
