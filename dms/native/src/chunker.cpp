#include "dms/chunker.hpp"

#include <stdexcept>
#include <utility>

namespace dms {

FileChunker::FileChunker(ChunkerConfig config) : config_(config) {
  if (config_.chunk_size == 0) throw std::invalid_argument("chunk_size must be > 0");
  if (config_.unit_bytes == 0) throw std::invalid_argument("unit_bytes must be > 0");
  if (config_.unit_max_pieces == 0) throw std::invalid_argument("unit_max_pieces must be > 0");
}

std::vector<Piece> FileChunker::split(uint64_t file_index, uint64_t size) const {
  std::vector<Piece> pieces;
  if (size == 0) {
    pieces.push_back({file_index, 0, 0});
    return pieces;
  }
  pieces.reserve(size / config_.chunk_size + 1);
  for (uint64_t off = 0; off < size; off += config_.chunk_size) {
    uint64_t len = size - off < config_.chunk_size ? size - off : config_.chunk_size;
    pieces.push_back({file_index, off, len});
  }
  return pieces;
}

void FileChunker::add(uint64_t file_index, uint64_t size) {
  for (const Piece& p : split(file_index, size)) {
    bool full_by_bytes = current_.bytes > 0 && current_.bytes + p.length > config_.unit_bytes;
    if (full_by_bytes || current_.pieces.size() >= config_.unit_max_pieces) close_current();
    current_.pieces.push_back(p);
    current_.bytes += p.length;
    if (current_.bytes >= config_.unit_bytes) close_current();
  }
}

void FileChunker::close_current() {
  if (current_.pieces.empty()) return;
  ready_.push_back(std::move(current_));
  current_ = WorkUnit{};
}

std::vector<WorkUnit> FileChunker::take_ready() { return std::exchange(ready_, {}); }

std::vector<WorkUnit> FileChunker::finish() {
  close_current();
  return take_ready();
}

}  // namespace dms
