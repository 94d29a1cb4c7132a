// Replays every file of the fuzz corpus through the fuzz target (a regression
// test for the receiver's parser), then checks that nothing was written next
// to the root (the root is <tmp>/inside; its parent must hold only it).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  // The corpus names paths under this fixed root; start from an empty parent.
  std::string parent = "/tmp/dms-fuzz-root";
  std::system(("rm -rf '" + parent + "'").c_str());
  std::string root = parent + "/inside";
  ::setenv("DMS_FUZZ_ROOT", root.c_str(), 1);
  DIR* d = ::opendir(argv[1]);
  if (d == nullptr) {
    std::perror(argv[1]);
    return 2;
  }
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string(argv[1]) + "/" + e->d_name, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++n;
  }
  ::closedir(d);
  int outside = 0;
  if (DIR* p = ::opendir(parent.c_str())) {
    while (dirent* e = ::readdir(p)) {
      std::string name = e->d_name;
      if (name != "." && name != ".." && name != "inside") {
        std::fprintf(stderr, "written outside the root: %s/%s\n", parent.c_str(), name.c_str());
        ++outside;
      }
    }
    ::closedir(p);
  }
  std::system(("rm -rf '" + parent + "'").c_str());
  std::printf("replayed %d corpus inputs, %d writes outside the root\n", n, outside);
  return n > 0 && outside == 0 ? 0 : 1;
}
