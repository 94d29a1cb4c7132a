// Fuzz target: hostile bytes on the data port, straight into the receiver's
// protocol logic (ReceiverSession over a MemoryTransport: the same code a TCP
// connection runs, minus the socket). The first input byte picks the path:
// even = frames as if already authenticated (the parser and the writer, where
// the interesting code is), odd = from the handshake (a random proof never
// passes, so this checks the refusal paths). Invariants: no crash, no hang
// (every loop is bounded by the input), no write outside the root (checked by
// the replay test, which scans the directory around the root).
//
// Built two ways: with clang -fsanitize=fuzzer,address,undefined for a timed
// fuzzing run (scripts/fuzz.sh), and with fuzz_replay.cpp as a plain program
// that replays the committed corpus as a regression test (ctest, also ASan).
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "dms/confine.hpp"
#include "dms/receiver.hpp"
#include "dms/transport.hpp"

namespace {

const char* root_dir() {
  static std::string root = [] {
    const char* env = std::getenv("DMS_FUZZ_ROOT");
    std::string r = env ? env : "/tmp/dms-fuzz-root/inside";  // the corpus names paths under it
    std::string parent = r.substr(0, r.rfind('/'));
    ::mkdir(parent.c_str(), 0755);
    ::mkdir(r.c_str(), 0755);
    return r;
  }();
  return root.c_str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static dms::Roots roots({root_dir()});
  static dms::EventLog log(64);
  static dms::ReceiverCounters counters;
  static std::vector<unsigned char> buffer(4096);
  dms::MemoryTransport t(std::vector<uint8_t>(data + 1, data + size));
  dms::ReceiverSession session(t, roots, "fuzzing-secret-0123456789", log, counters, buffer);
  if (data[0] & 1) {
    session.run();
  } else {
    try {
      session.serve();
    } catch (const std::exception&) {  // a broken stream ends the session: expected
    }
  }
  log.drain();
  return 0;
}
