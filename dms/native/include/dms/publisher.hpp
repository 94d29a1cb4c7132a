// publish_whole_files: what finalize does for a file, done by the transfer that
// copied it when one piece holds the whole file (small files, the common case in
// big trees). Spreading it over the transfer tasks keeps it off finalize's single
// serial loop (docs/decisions/0014-read-ahead-and-publish-in-transfer.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dms/checksum.hpp"
#include "dms/copier.hpp"

namespace dms {

struct PublishSpec {
  std::string staged;      // the staging file the copier wrote
  std::string final_path;  // its name once published (same directory)
  uint64_t size = 0;       // the whole file
  Digest expected;         // of the whole file, recorded by the copier
  uint32_t mode = 0600;
  int64_t uid = -1;        // chown to uid:gid when uid >= 0
  int64_t gid = -1;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  bool verified = false;   // the copier did the check and the metadata (CopySpec::finish): rename only
};

// For each spec: re-read the staged file and compare it with `expected`, then set
// owner, mode and times on the open descriptor (what was verified is what gets them).
// Then, once for all, syncfs(sync_path) unless it is empty (data on disk before any
// name makes it visible), and rename each file that passed into place. A staging file
// that is gone while the final name holds exactly the expected bytes was published by a
// duplicate run of the same unit: Ok. One outcome per spec, in order: Ok, Mismatch
// (IntegrityError) or OsError; per-file failures never throw (a failed syncfs does).
std::vector<PieceOutcome> publish_whole_files(const std::vector<PublishSpec>& specs, const std::string& sync_path,
                                              size_t buffer_size);

}  // namespace dms
