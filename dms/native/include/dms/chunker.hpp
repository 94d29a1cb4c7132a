// FileChunker: turns a stream of (file, size) into work units. Large files are
// cut into chunks of at most chunk_size bytes; small files are packed together
// so that one Celery task always carries a sensible amount of work (at least
// unit_bytes, or unit_max_pieces pieces), which keeps per-task overhead small.
#pragma once

#include <cstdint>
#include <vector>

namespace dms {

struct Piece {
  uint64_t file_index = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct WorkUnit {
  std::vector<Piece> pieces;
  uint64_t bytes = 0;
};

struct ChunkerConfig {
  uint64_t chunk_size = 64ull << 20;   // largest piece of one file
  uint64_t unit_bytes = 64ull << 20;   // a unit closes when it reaches this many bytes
  uint64_t unit_max_pieces = 1000;     // ... or this many pieces (small files)
};

class FileChunker {
 public:
  explicit FileChunker(ChunkerConfig config);  // throws std::invalid_argument

  const ChunkerConfig& config() const noexcept { return config_; }

  // The chunk boundaries of one file: [0, cs), [cs, 2cs), ...; an empty file
  // gets one empty piece so it is still created and published.
  std::vector<Piece> split(uint64_t file_index, uint64_t size) const;

  // Streaming packer: add files in walk order, collect the units that are
  // complete with take_ready(), and the rest with finish().
  void add(uint64_t file_index, uint64_t size);
  std::vector<WorkUnit> take_ready();
  std::vector<WorkUnit> finish();

 private:
  void close_current();
  ChunkerConfig config_;
  WorkUnit current_;
  std::vector<WorkUnit> ready_;
};

}  // namespace dms
