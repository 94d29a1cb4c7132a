#include "dms/mapped.hpp"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>

#include "dms/errors.hpp"
#include "dms/io.hpp"

namespace dms {

namespace {

// One guarded range per thread: a SIGBUS inside it jumps back to hash_mapped.
struct Guard {
  sigjmp_buf back;
  const char* lo;
  const char* hi;
};

thread_local Guard* t_guard = nullptr;

// What handled SIGBUS before us (Python's faulthandler under pytest, the
// sanitizers, or the default): every SIGBUS that is not ours goes to it.
struct sigaction g_previous {};
std::mutex g_install;

// Set while a SIGBUS that is not ours is handed to the previous handler. A handler that
// puts its own predecessor back and raises again (Python's faulthandler does, and its
// predecessor may be us) re-enters here: the cycle ends with the default action.
volatile sig_atomic_t g_handing_over = 0;

extern "C" void on_sigbus(int sig, siginfo_t* info, void* context) {
  Guard* g = t_guard;
  auto* at = static_cast<const char*>(info->si_addr);
  if (g != nullptr && at >= g->lo && at < g->hi) siglongjmp(g->back, 1);
  if (g_handing_over != 0) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGBUS, &dfl, nullptr);
    return;  // the faulting access (or the raise) repeats under the default: the process dies
  }
  // Not ours: step aside, putting back what was there before, and let it act. If it
  // returns, the faulting access repeats and meets it again (or, for the default action,
  // ends the process as it would have without us); hash_mapped installs us again.
  g_handing_over = 1;
  ::sigaction(SIGBUS, &g_previous, nullptr);
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr)
    g_previous.sa_sigaction(sig, info, context);
  else if ((g_previous.sa_flags & SA_SIGINFO) == 0 && g_previous.sa_handler != SIG_DFL &&
           g_previous.sa_handler != SIG_IGN)
    g_previous.sa_handler(sig);
  g_handing_over = 0;
}

// Installs on_sigbus unless it is in place. Checked on every call, not once:
// something may install its own handler after us (faulthandler.enable()).
void ensure_handler() {
  struct sigaction current {};
  if (::sigaction(SIGBUS, nullptr, &current) != 0) throw_errno(errno, "sigaction", "SIGBUS");
  if ((current.sa_flags & SA_SIGINFO) != 0 && current.sa_sigaction == on_sigbus) return;
  std::lock_guard lock(g_install);
  if (::sigaction(SIGBUS, nullptr, &current) != 0) throw_errno(errno, "sigaction", "SIGBUS");
  if ((current.sa_flags & SA_SIGINFO) != 0 && current.sa_sigaction == on_sigbus) return;
  struct sigaction ours {};
  ours.sa_sigaction = on_sigbus;
  ours.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&ours.sa_mask);
  g_previous = current;
  if (::sigaction(SIGBUS, &ours, nullptr) != 0) throw_errno(errno, "sigaction", "SIGBUS");
}

// Owns one mapping.
class Mapping {
 public:
  Mapping(int fd, off_t start, size_t len) : len_(len) {
    void* p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, start);
    if (p != MAP_FAILED) base_ = static_cast<const char*>(p);
    else error_ = errno;
  }
  ~Mapping() {
    if (base_ != nullptr) ::munmap(const_cast<char*>(base_), len_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const char* base() const noexcept { return base_; }
  int error() const noexcept { return error_; }

 private:
  const char* base_ = nullptr;
  size_t len_;
  int error_ = 0;
};

// The guarded part, kept free of objects with destructors: siglongjmp skips them.
// Returns false when a SIGBUS (truncation) cut the hashing short.
bool hash_guarded(const char* data, size_t n, Hasher& h) {
  Guard g;
  g.lo = data;
  g.hi = data + n;
  if (sigsetjmp(g.back, 1) != 0) {
    t_guard = nullptr;
    return false;
  }
  t_guard = &g;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the guard is set before the first read
  h.update(data, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_guard = nullptr;
  return true;
}

}  // namespace

AfterMapHook& after_map_hook() noexcept {
  static AfterMapHook hook = nullptr;
  return hook;
}

Mapped hash_mapped(const File& f, uint64_t off, size_t n, Hasher& h) {
  if (n == 0) return Mapped::Hashed;
  static const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t start = off - off % page;
  size_t lead = static_cast<size_t>(off - start);
  Mapping m(f.fd(), static_cast<off_t>(start), lead + n);
  if (m.base() == nullptr) {
    if (m.error() == ENODEV || m.error() == EACCES || m.error() == EINVAL || m.error() == EPERM)
      return Mapped::Unmappable;
    throw_errno(m.error(), "mmap", f.path());
  }
  // Pages wholly past the end would raise SIGBUS, and the part of the last page past
  // the end reads as zeros: a file already shorter than the range is Short, checked here.
  struct stat st {};
  if (::fstat(f.fd(), &st) != 0) throw_errno(errno, "fstat", f.path());
  if (static_cast<uint64_t>(st.st_size) < off + n) return Mapped::Short;
  if (after_map_hook() != nullptr) after_map_hook()(f.fd());
  ensure_handler();
  return hash_guarded(m.base() + lead, n, h) ? Mapped::Hashed : Mapped::Short;
}

bool hash_file_range(const File& f, uint64_t off, uint64_t n, Hasher& h, std::vector<unsigned char>& buffer) {
  uint64_t done = 0;
  while (done < n) {
    uint64_t left = n - done;
    if (left >= kMapMinBytes) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(left, kMapWindowBytes));
      Mapped r = hash_mapped(f, off + done, want, h);
      if (r == Mapped::Short) return false;
      if (r == Mapped::Hashed) {
        done += want;
        continue;
      }
    }
    size_t want = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
    size_t got = pread_full(f, buffer.data(), want, static_cast<off_t>(off + done));
    h.update(buffer.data(), got);
    if (got < want) return false;
    done += got;
  }
  return true;
}

}  // namespace dms
