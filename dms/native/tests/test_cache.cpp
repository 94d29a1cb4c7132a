// Leaving the source's page cache as a transfer found it (dms/cache.hpp): what
// is cold stays cold after a copy or a send, what was cached stays cached, and
// small files are left alone.
#include <fcntl.h>

#include <cstdio>
#include <string>
#include <vector>

#include "check.hpp"
#include "files.hpp"
#include "dms/cache.hpp"
#include "dms/copier.hpp"
#include "dms/file.hpp"
#include "dms/readahead.hpp"

using namespace dms;
using dms_test::TempDir;
using dms_test::cached_bytes;
using dms_test::make_cold;
using dms_test::random_bytes;
using dms_test::read_file;
using dms_test::spec_for;
using dms_test::write_file;

namespace {

bool skip_if_always_cached(const std::string& path) {
  if (make_cold(path)) return false;
  std::fprintf(stderr, "  skipped: %s stays in the page cache (tmpfs?)\n", path.c_str());
  return true;
}

}  // namespace

TEST_CASE("range_uncached follows the page cache; drop_cached empties it") {
  TempDir dir;
  std::string data = random_bytes(4 << 20, 1);
  write_file(dir.file("f"), data);
  if (skip_if_always_cached(dir.file("f"))) return;
  File f(dir.file("f"), O_RDONLY);
  CHECK(range_uncached(f, 0, data.size()));
  read_file(dir.file("f"));
  CHECK(!range_uncached(f, 0, data.size()));
  CHECK(!range_uncached(f, 1 << 20, 4096));  // any range of it
  drop_cached(f, 0, data.size());
  CHECK(range_uncached(f, 0, data.size()));
  CHECK(!range_uncached(f, 0, 0));  // nothing to tell: never "drop"
}

TEST_CASE("ReadAhead notes cold ranges, not cached ones, not small ones, and only when asked") {
  TempDir dir;
  write_file(dir.file("cold"), random_bytes(kDropMinBytes * 2, 2));
  write_file(dir.file("warm"), random_bytes(kDropMinBytes * 2, 3));
  write_file(dir.file("small"), random_bytes(kDropMinBytes / 2, 4));
  for (const char* name : {"cold", "warm", "small"})
    if (skip_if_always_cached(dir.file(name))) return;
  read_file(dir.file("warm"));
  std::vector<SourceRange> ranges{{dir.file("cold"), 0, kDropMinBytes * 2},
                                  {dir.file("warm"), 0, kDropMinBytes * 2},
                                  {dir.file("small"), 0, kDropMinBytes / 2}};
  ReadAhead noting(ranges, 8, 1ull << 30, true);
  for (size_t i = 0; i < ranges.size(); ++i) noting.open(i, O_RDONLY);
  CHECK(noting.was_uncached(0));
  CHECK(!noting.was_uncached(1));
  CHECK(!noting.was_uncached(2));
  make_cold(dir.file("cold"));
  ReadAhead plain(ranges, 8, 1ull << 30);
  plain.open(0, O_RDONLY);
  CHECK(!plain.was_uncached(0));
}

TEST_CASE("a piece whose head another piece's read-ahead cached still counts as cold") {
  TempDir dir;
  write_file(dir.file("f"), random_bytes(kDropMinBytes * 4, 5));
  if (skip_if_always_cached(dir.file("f"))) return;
  {  // the kernel's read-ahead past the end of the piece before: the head of the next one
    File f(dir.file("f"), O_RDONLY);
    std::vector<unsigned char> buf(kDropMinBytes / 4);
    CHECK(::pread(f.fd(), buf.data(), buf.size(), static_cast<off_t>(kDropMinBytes * 2)) > 0);
  }
  ReadAhead ra({{dir.file("f"), kDropMinBytes * 2, kDropMinBytes * 2}}, 8, 1ull << 30, true);
  ra.open(0, O_RDONLY);
  CHECK(ra.was_uncached(0));
}

TEST_CASE("a copy leaves a cold source cold and a cached source cached, both copy methods") {
  for (CopyMethod method : {CopyMethod::ReadWrite, CopyMethod::CopyFileRange}) {
    TempDir dir;
    std::string cold = random_bytes(3 * kDropMinBytes + 123, 6), warm = random_bytes(3 * kDropMinBytes, 7);
    write_file(dir.file("cold"), cold);
    write_file(dir.file("warm"), warm);
    if (skip_if_always_cached(dir.file("cold")) || skip_if_always_cached(dir.file("warm"))) return;
    read_file(dir.file("warm"));
    UnitCopier c({spec_for(dir.file("cold"), dir.file("a"), 0, cold.size(), cold.size()),
                  spec_for(dir.file("warm"), dir.file("b"), 0, warm.size(), warm.size())},
                 method, 256 * 1024);
    while (!c.done())
      for (auto& o : c.step(1 << 20)) CHECK(o.status == PieceStatus::Ok);
    CHECK(read_file(dir.file("a")) == cold);
    CHECK(read_file(dir.file("b")) == warm);
    CHECK(cached_bytes(dir.file("cold")) == 0);
    CHECK(cached_bytes(dir.file("warm")) == warm.size());
  }
}

TEST_MAIN()
