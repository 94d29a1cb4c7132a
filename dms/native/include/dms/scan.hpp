// scan_directory: one directory of the walk in one call: its names, an lstat of
// each, and rsync's quick check of each regular file against the destination.
// The walk of a big tree is mostly these system calls; doing them here, with the
// GIL released, leaves Python one tuple per entry instead of a DirEntry, a
// stat_result and a destination lstat (docs/decisions/0015-native-directory-scan.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dms {

struct ScanEntry {
  std::string name;
  int err = 0;             // errno of a failed lstat (the fields below are then 0)
  uint32_t mode = 0;       // st_mode: type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;     // 512-byte blocks
  uint64_t nlink = 0;
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t rdev = 0;
  int64_t mtime_ns = 0;
  int64_t atime_ns = 0;
  // regular here and at the destination, same size, mtime (ns) and mode; as root the same
  // owner too; with `xattrs`, the same extended attributes (what rsync -aX would change)
  bool up_to_date = false;
};

struct DirScan {
  int err = 0;  // errno when the directory cannot be opened or read (no entries then)
  std::vector<ScanEntry> entries;  // in the order the directory returns them ("." and ".." left out)
};

// Lists `dir` and lstat()s each entry relative to it. With a non-empty `dest_dir`, each
// regular file is also lstat()ed at the same name there (a missing destination directory
// means nothing is up to date). Never throws for I/O: errors are in `err` fields.
DirScan scan_directory(const std::string& dir, const std::string& dest_dir, bool xattrs = false);

}  // namespace dms
