// Hashing through a mapping (dms/mapped.hpp): the same digest as hashing the
// bytes, a short or truncated file reported as Short (the SIGBUS of a
// truncation caught, the process alive), and a SIGBUS that is not ours still
// fatal, as it was before the handler was installed.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "check.hpp"
#include "files.hpp"
#include "dms/checksum.hpp"
#include "dms/file.hpp"
#include "dms/mapped.hpp"

using namespace dms;
using dms_test::TempDir;
using dms_test::random_bytes;
using dms_test::write_file;

namespace {

struct HookReset {
  ~HookReset() { after_map_hook() = nullptr; }
};

// In a forked child: reads a mapping of `path` past the end it was cut to, outside any
// guard (a SIGBUS that is not DMS's), then exits 0 if it survived; 3 if it could not set up.
[[noreturn]] void fault_outside_a_guard(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR);
  void* p = ::mmap(nullptr, 1 << 20, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || ::ftruncate(fd, 0) != 0) ::_exit(3);
  volatile char c = static_cast<const char*>(p)[8192];  // past the end: SIGBUS
  (void)c;
  ::_exit(0);
}

}  // namespace

TEST_CASE("hash_mapped gives the digest of the bytes, at unaligned offsets and lengths too") {
  TempDir dir;
  std::string data = random_bytes(3 * 1024 * 1024 + 123, 7);
  write_file(dir.file("f"), data);
  File f(dir.file("f"), O_RDONLY);
  for (auto [off, len] : std::vector<std::pair<size_t, size_t>>{
           {0, data.size()}, {1, 300000}, {4095, 4097}, {1 << 20, 2 << 20}, {data.size() - 70000, 70000}}) {
    Hasher h;
    CHECK(hash_mapped(f, off, len, h) == Mapped::Hashed);
    CHECK(h.digest() == digest_of(data.data() + off, len));
  }
}

TEST_CASE("hash_file_range: mapped windows and pread pieces hash the same; a short file is false") {
  TempDir dir;
  std::string data = random_bytes(kMapWindowBytes * 2 + 5000, 11);
  write_file(dir.file("f"), data);
  File f(dir.file("f"), O_RDONLY);
  std::vector<unsigned char> buffer(1 << 16);
  Hasher h;
  CHECK(hash_file_range(f, 3, data.size() - 3, h, buffer));
  CHECK(h.digest() == digest_of(data.data() + 3, data.size() - 3));
  Hasher small;
  CHECK(hash_file_range(f, 100, 1000, small, buffer));  // below kMapMinBytes: pread
  CHECK(small.digest() == digest_of(data.data() + 100, 1000));
  Hasher past;
  CHECK(!hash_file_range(f, 0, data.size() + 1, past, buffer));
  Hasher h2;
  CHECK(hash_mapped(f, 0, data.size() + 4096 * 3, h2) == Mapped::Short);  // checked before any SIGBUS
}

TEST_CASE("a file truncated while mapped is Short: the SIGBUS is caught, the process lives on") {
  TempDir dir;
  std::string data = random_bytes(4 << 20, 3);
  write_file(dir.file("f"), data);
  File f(dir.file("f"), O_RDONLY);
  HookReset reset;
  // The descriptor is read-only: truncate through another one, as another process would.
  static std::string path;
  path = dir.file("f");
  after_map_hook() = [](int) { CHECK(::truncate(path.c_str(), 4096) == 0); };
  Hasher h;
  CHECK(hash_mapped(f, 0, data.size(), h) == Mapped::Short);
  after_map_hook() = nullptr;
  // Still usable afterwards: the handler is back in place and the next range hashes.
  write_file(dir.file("g"), data);
  File g(dir.file("g"), O_RDONLY);
  Hasher h3;
  CHECK(hash_mapped(g, 0, data.size(), h3) == Mapped::Hashed);
  CHECK(h3.digest() == digest_of(data.data(), data.size()));
}

TEST_CASE("a SIGBUS outside a guarded range still ends the process") {
  TempDir dir;
  std::string data = random_bytes(1 << 20, 5);
  write_file(dir.file("f"), data);
  {
    File f(dir.file("f"), O_RDONLY);
    Hasher h;
    CHECK(hash_mapped(f, 0, data.size(), h) == Mapped::Hashed);  // installs the handler
  }
  pid_t child = ::fork();
  if (child == 0) fault_outside_a_guard(dir.file("f"));
  int status = 0;
  CHECK(::waitpid(child, &status, 0) == child);
  // Killed by SIGBUS, or (under AddressSanitizer, whose handler was there first) a
  // report and a failing exit: never the normal end the child would reach if we ate it.
  if (WIFSIGNALED(status))
    CHECK(WTERMSIG(status) == SIGBUS);
  else
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3);
}

namespace {
struct sigaction g_before_x {};  // what the handler below puts back: DMS's, as faulthandler would
}  // namespace

TEST_CASE("a foreign SIGBUS handed to a handler that puts ours back and raises again still ends the process") {
  // Python's faulthandler, enabled after DMS installed its handler, does exactly this: on a
  // fault it restores its predecessor (ours) and raises the signal again. That must not turn
  // into a cycle between the two handlers (a hang, or a stack overflow on the signal stack).
  TempDir dir;
  std::string data = random_bytes(1 << 20, 9);
  write_file(dir.file("f"), data);
  pid_t child = ::fork();
  if (child == 0) {
    ::alarm(20);  // a cycle would hang: SIGALRM then fails the check below
    File f(dir.file("f"), O_RDONLY);
    Hasher h;
    if (hash_mapped(f, 0, data.size(), h) != Mapped::Hashed) ::_exit(3);  // installs ours
    struct sigaction x {};
    x.sa_handler = +[](int sig) {
      ::sigaction(SIGBUS, &g_before_x, nullptr);
      ::raise(sig);
    };
    x.sa_flags = SA_NODEFER;
    sigemptyset(&x.sa_mask);
    ::sigaction(SIGBUS, &x, &g_before_x);  // like faulthandler.enable() after us
    Hasher h2;
    if (hash_mapped(f, 0, data.size(), h2) != Mapped::Hashed) ::_exit(3);  // ours again, x before it
    fault_outside_a_guard(dir.file("f"));
  }
  int status = 0;
  CHECK(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGBUS);
}

TEST_CASE("a file that cannot be mapped is Unmappable, and hash_file_range reads it instead") {
  File f("/proc/self/status", O_RDONLY);
  Hasher h;
  CHECK(hash_mapped(f, 0, kMapMinBytes, h) == Mapped::Unmappable);
}

TEST_MAIN()
