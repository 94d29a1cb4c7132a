// A minimal test harness: no framework to install, one binary per area, the
// exit status says whether every check held. Kept tiny on purpose.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace dms_test {

struct Case {
  const char* name;
  std::function<void()> body;
};

inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}

inline int& failures() {
  static int n = 0;
  return n;
}

struct Register {
  Register(const char* name, std::function<void()> body) { cases().push_back({name, std::move(body)}); }
};

inline int open_fd_count() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// A private scratch directory, removed with its contents at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/dms-native-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

inline int run_all() {
  for (const Case& c : cases()) {
    int before = failures();
    int fds = open_fd_count();
    try {
      c.body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  unexpected exception: %s\n", e.what());
      ++failures();
    }
    if (open_fd_count() != fds) {
      std::fprintf(stderr, "  leaked %d file descriptor(s)\n", open_fd_count() - fds);
      ++failures();
    }
    std::printf("%s %s\n", failures() == before ? "ok  " : "FAIL", c.name);
  }
  std::printf("%zu cases, %d failed checks\n", cases().size(), failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace dms_test

#define DMS_CAT2(a, b) a##b
#define DMS_CAT(a, b) DMS_CAT2(a, b)
#define TEST_CASE(name) \
  static void DMS_CAT(test_, __LINE__)(); \
  static dms_test::Register DMS_CAT(reg_, __LINE__)(name, DMS_CAT(test_, __LINE__)); \
  static void DMS_CAT(test_, __LINE__)()
#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++dms_test::failures();                                                   \
    }                                                                           \
  } while (0)
#define CHECK_THROWS_AS(expr, type)                                            \
  do {                                                                          \
    bool caught_ = false;                                                       \
    try {                                                                       \
      (void)(expr);                                                             \
    } catch (const type&) {                                                     \
      caught_ = true;                                                           \
    }                                                                           \
    if (!caught_) {                                                             \
      std::fprintf(stderr, "  %s:%d: %s did not throw %s\n", __FILE__, __LINE__, #expr, #type); \
      ++dms_test::failures();                                                   \
    }                                                                           \
  } while (0)
#define TEST_MAIN() \
  int main() { return dms_test::run_all(); }
