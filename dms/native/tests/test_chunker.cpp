#include <stdexcept>

#include "check.hpp"
#include "dms/chunker.hpp"

using dms::ChunkerConfig;
using dms::FileChunker;

TEST_CASE("split: exact multiple, +1 byte, empty file") {
  FileChunker c(ChunkerConfig{100, 100, 10});
  auto exact = c.split(7, 200);
  CHECK(exact.size() == 2);
  CHECK(exact[1].offset == 100 && exact[1].length == 100 && exact[1].file_index == 7);
  auto plus_one = c.split(1, 101);
  CHECK(plus_one.size() == 2);
  CHECK(plus_one[1].offset == 100 && plus_one[1].length == 1);
  auto empty = c.split(2, 0);
  CHECK(empty.size() == 1 && empty[0].length == 0);
}

TEST_CASE("small files are packed until unit_bytes") {
  FileChunker c(ChunkerConfig{1000, 100, 1000});
  for (uint64_t i = 0; i < 25; ++i) c.add(i, 10);
  auto ready = c.take_ready();
  CHECK(ready.size() == 2);  // 10 files of 10 bytes close a unit at exactly 100
  CHECK(ready[0].pieces.size() == 10 && ready[0].bytes == 100);
  auto rest = c.finish();
  CHECK(rest.size() == 1 && rest[0].pieces.size() == 5);
}

TEST_CASE("unit_max_pieces bounds empty and tiny files") {
  FileChunker c(ChunkerConfig{1000, 1000, 4});
  for (uint64_t i = 0; i < 10; ++i) c.add(i, 0);
  auto units = c.finish();
  CHECK(units.size() == 3);
  CHECK(units[0].pieces.size() == 4 && units[2].pieces.size() == 2);
}

TEST_CASE("a large file becomes one unit per chunk, and covers every byte once") {
  FileChunker c(ChunkerConfig{64, 64, 100});
  c.add(0, 10);
  c.add(1, 64 * 3 + 5);
  c.add(2, 3);
  auto units = c.finish();
  uint64_t covered = 0;
  for (auto& u : units) {
    CHECK(u.bytes <= 64);
    for (auto& p : u.pieces)
      if (p.file_index == 1) covered += p.length;
  }
  CHECK(covered == 64 * 3 + 5);
}

TEST_CASE("invalid configuration is refused") {
  CHECK_THROWS_AS(FileChunker(ChunkerConfig{0, 1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(FileChunker(ChunkerConfig{1, 0, 1}), std::invalid_argument);
  CHECK_THROWS_AS(FileChunker(ChunkerConfig{1, 1, 0}), std::invalid_argument);
}

TEST_MAIN()
