// The TCP data plane end to end on loopback: a real TcpReceiver thread pool,
// real sockets, real files. Authentication, replay, garbage, confinement,
// corruption in flight and a source that shrinks mid-send.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "check.hpp"
#include "files.hpp"
#include "dms/cache.hpp"
#include "dms/copier.hpp"
#include "dms/errors.hpp"
#include "dms/protocol.hpp"
#include "dms/receiver.hpp"
#include "dms/sender.hpp"

using namespace dms;
using dms_test::TempDir;
using dms_test::cached_bytes;
using dms_test::make_cold;
using dms_test::mtime_ns;
using dms_test::random_bytes;
using dms_test::read_file;
using dms_test::spec_for;
using dms_test::write_file;

namespace {

const std::string kSecret = "a-test-secret-of-32-bytes-length";

struct Fixture {
  TempDir dir;
  std::unique_ptr<TcpReceiver> receiver;
  uint16_t port = 0;
  Fixture() {
    ::mkdir(dir.file("src").c_str(), 0755);
    ::mkdir(dir.file("dst").c_str(), 0755);
    ReceiverConfig cfg;
    cfg.listen = {{"127.0.0.1", 0}};
    cfg.roots = {dir.file("dst")};
    cfg.secret = kSecret;
    cfg.handshake_timeout_ms = 2000;
    receiver = std::make_unique<TcpReceiver>(cfg);
    receiver->start();
    std::string a = receiver->addresses().at(0);
    port = static_cast<uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
  }
  ~Fixture() { receiver->stop(); }
  TcpTarget target() const { return TcpTarget{"127.0.0.1", "127.0.0.1", port, 5000}; }
  std::vector<PieceOutcome> run(UnitSender& s) {
    std::vector<PieceOutcome> all;
    while (!s.done())
      for (auto& o : s.step(1 << 20)) all.push_back(std::move(o));
    return all;
  }
  bool logged(const std::string& needle) {
    for (auto& e : receiver->drain_events()) {
      events.push_back(e.message);
    }
    for (auto& m : events)
      if (m.find(needle) != std::string::npos) return true;
    return false;
  }
  std::vector<std::string> events;
};

const PieceOutcome* find(const std::vector<PieceOutcome>& all, size_t index) {
  for (auto& o : all)
    if (o.index == index) return &o;
  return nullptr;
}

}  // namespace

TEST_CASE("a unit of chunks and small files arrives byte-exact, both send methods") {
  for (SendMethod method : {SendMethod::ReadSend, SendMethod::Sendfile}) {
    Fixture fx;
    std::string big = random_bytes(3 * 1024 * 1024 + 17, 1), small = random_bytes(100, 2);
    write_file(fx.dir.file("src/big"), big);
    write_file(fx.dir.file("src/small"), small);
    write_file(fx.dir.file("src/empty"), "");
    std::string sb = fx.dir.file("dst/sub/.big.dms-t.partial");
    std::vector<CopySpec> specs{spec_for(fx.dir.file("src/big"), sb, 2 * 1024 * 1024, big.size() - 2 * 1024 * 1024, big.size()),
                                spec_for(fx.dir.file("src/big"), sb, 0, 2 * 1024 * 1024, big.size()),
                                spec_for(fx.dir.file("src/small"), fx.dir.file("dst/.small.dms-t.partial"), 0, 100, 100),
                                spec_for(fx.dir.file("src/empty"), fx.dir.file("dst/.empty.dms-t.partial"), 0, 0, 0)};
    UnitSender sender(specs, fx.target(), kSecret, method, 256 * 1024);
    auto all = fx.run(sender);
    CHECK(all.size() == 4);
    for (auto& o : all) CHECK(o.status == PieceStatus::Ok);
    CHECK(read_file(sb) == big);
    CHECK(read_file(fx.dir.file("dst/.small.dms-t.partial")) == small);
    CHECK(read_file(fx.dir.file("dst/.empty.dms-t.partial")).empty());
    CHECK(find(all, 1)->digest == hash_range(fx.dir.file("src/big"), 0, 2 * 1024 * 1024));
    CHECK(sender.bytes_moved() == big.size() + 100);
    CHECK(sender.local_address().rfind("127.0.0.1:", 0) == 0);
    CHECK(fx.receiver->stats()["pieces_ok"] == 4);
  }
}

TEST_CASE("a send leaves a cold source cold and a cached source cached, both send methods") {
  for (SendMethod method : {SendMethod::ReadSend, SendMethod::Sendfile}) {
    Fixture fx;
    // Larger than the loopback socket buffers: much of a piece is still in flight when its
    // last block is sent; its pages are dropped again at its reply and when the sender goes.
    std::string cold = random_bytes(24 * kDropMinBytes + 5, 8), warm = random_bytes(3 * kDropMinBytes, 9);
    write_file(fx.dir.file("src/cold"), cold);
    write_file(fx.dir.file("src/warm"), warm);
    if (!make_cold(fx.dir.file("src/cold")) || !make_cold(fx.dir.file("src/warm"))) {
      std::fprintf(stderr, "  skipped: the test directory stays in the page cache (tmpfs?)\n");
      return;
    }
    CHECK(read_file(fx.dir.file("src/warm")) == warm);  // now cached
    {
      UnitSender sender(
          {spec_for(fx.dir.file("src/cold"), fx.dir.file("dst/.cold.dms-t.partial"), 0, cold.size(), cold.size()),
           spec_for(fx.dir.file("src/warm"), fx.dir.file("dst/.warm.dms-t.partial"), 0, warm.size(), warm.size())},
          fx.target(), kSecret, method, 256 * 1024);
      for (auto& o : fx.run(sender)) CHECK(o.status == PieceStatus::Ok);
    }
    // The receiving socket lets go of the last pages it read a moment after the reply: a few
    // may stay cached (decision 0021), never more than a socket buffer's worth.
    CHECK(cached_bytes(fx.dir.file("src/cold")) <= cold.size() / 8);
    CHECK(read_file(fx.dir.file("dst/.cold.dms-t.partial")) == cold);
    CHECK(cached_bytes(fx.dir.file("src/warm")) == warm.size());
  }
}

TEST_CASE("a unit of many large files keeps a bounded number of descriptors open to drop them") {
  Fixture fx;
  std::vector<CopySpec> specs;
  for (int i = 0; i < 100; ++i) {
    std::string path = fx.dir.file("src/f" + std::to_string(i));
    write_file(path, random_bytes(kDropMinBytes, static_cast<unsigned>(i)));
    specs.push_back(spec_for(path, fx.dir.file("dst/.f" + std::to_string(i) + ".dms-t.partial"), 0, kDropMinBytes,
                             kDropMinBytes));
    if (!make_cold(path)) {
      std::fprintf(stderr, "  skipped: the test directory stays in the page cache (tmpfs?)\n");
      return;
    }
  }
  int before = dms_test::open_fd_count();
  UnitSender sender(specs, fx.target(), kSecret, SendMethod::Sendfile, 256 * 1024);
  for (auto& o : fx.run(sender)) CHECK(o.status == PieceStatus::Ok);
  int held = dms_test::open_fd_count() - before;
  CHECK(held > 0);    // the last pieces' descriptors, kept to drop them once more
  CHECK(held <= 70);  // 64 of them and the connection, not one per file
  CHECK(cached_bytes(fx.dir.file("src/f0")) == 0);  // closed early, dropped before it closed
}

TEST_CASE("a wrong secret is refused and logged") {
  Fixture fx;
  write_file(fx.dir.file("src/f"), "data");
  UnitSender sender({spec_for(fx.dir.file("src/f"), fx.dir.file("dst/.f.dms-t.partial"), 0, 4, 4)}, fx.target(),
                    "not-the-secret-at-all-123", SendMethod::ReadSend, 4096);
  CHECK_THROWS_AS(sender.step(1 << 20), AuthError);
  CHECK(::access(fx.dir.file("dst/.f.dms-t.partial").c_str(), F_OK) != 0);
  for (int i = 0; i < 50 && fx.receiver->stats()["auth_failures"] == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(fx.receiver->stats()["auth_failures"] == 1);
  CHECK(fx.logged("authentication failed"));
}

TEST_CASE("a recorded handshake replayed on a new connection is refused") {
  Fixture fx;
  std::vector<uint8_t> recorded;
  {
    TcpTransport t = TcpTransport::connect("", "127.0.0.1", fx.port, 2000);
    uint8_t hello[wire::kHelloSize];
    t.read_exact(hello, sizeof hello);
    wire::Auth a;
    a.nonce = fresh_nonce();
    a.mac = wire::client_proof(kSecret, wire::decode_hello(hello, sizeof hello).nonce, a.nonce);
    recorded = wire::encode_auth(a);
    t.write_all(recorded.data(), recorded.size());
    uint8_t ok[wire::kAuthOkSize];
    t.read_exact(ok, sizeof ok);
    CHECK(wire::has_magic(ok, sizeof ok, wire::kAuthOkMagic));  // the original exchange was valid
  }
  TcpTransport t = TcpTransport::connect("", "127.0.0.1", fx.port, 2000);
  uint8_t hello[wire::kHelloSize];
  t.read_exact(hello, sizeof hello);
  t.write_all(recorded.data(), recorded.size());
  uint8_t answer[wire::kReplyFixedSize];
  t.read_exact(answer, sizeof answer);
  size_t len = 0;
  CHECK(wire::decode_reply_fixed(answer, sizeof answer, len).status == wire::Status::AuthFailed);
  CHECK(fx.logged("replayed handshake"));
}

TEST_CASE("garbage on the port and an escaping path are refused while a real transfer completes") {
  Fixture fx;
  std::string data = random_bytes(8 * 1024 * 1024, 3);
  write_file(fx.dir.file("src/real"), data);
  write_file(fx.dir.file("src/evil"), "evil");
  std::string real_dst = fx.dir.file("dst/.real.dms-t.partial");
  UnitSender real({spec_for(fx.dir.file("src/real"), real_dst, 0, data.size(), data.size())}, fx.target(), kSecret,
                  SendMethod::ReadSend, 64 * 1024);
  std::vector<PieceOutcome> real_out;
  for (auto& o : real.step(1024 * 1024)) real_out.push_back(o);  // connected and mid-transfer
  {
    TcpTransport g = TcpTransport::connect("", "127.0.0.1", fx.port, 2000);
    std::string junk = random_bytes(500, 4);
    g.write_all(junk.data(), junk.size());
    uint8_t buf[256];
    while (g.read_some(buf, sizeof buf) > 0) {
    }  // the receiver answers and closes
  }
  UnitSender evil({spec_for(fx.dir.file("src/evil"), fx.dir.path + "/dst/../.evil.dms-t.partial", 0, 4, 4),
                   spec_for(fx.dir.file("src/evil"), "/tmp/.evil.dms-t.partial", 0, 4, 4),
                   spec_for(fx.dir.file("src/evil"), fx.dir.file("dst/.ok.dms-t.partial"), 0, 4, 4)},
                  fx.target(), kSecret, SendMethod::ReadSend, 4096);
  auto evil_out = fx.run(evil);
  CHECK(find(evil_out, 0)->status == PieceStatus::Refused);
  CHECK(find(evil_out, 1)->status == PieceStatus::Refused);
  CHECK(find(evil_out, 2)->status == PieceStatus::Ok);  // the same connection goes on serving
  CHECK(::access(fx.dir.file(".evil.dms-t.partial").c_str(), F_OK) != 0);
  CHECK(::access("/tmp/.evil.dms-t.partial", F_OK) != 0);
  for (auto& o : fx.run(real)) real_out.push_back(o);
  CHECK(real_out.size() == 1 && real_out[0].status == PieceStatus::Ok);
  CHECK(read_file(real_dst) == data);
  CHECK(fx.logged("the first frame is not a DMS handshake"));
  CHECK(fx.logged("outside every allowed root"));
}

TEST_CASE("corruption in flight is caught by the receiver's checksum") {
  Fixture fx;
  std::string data = random_bytes(300000, 5);
  write_file(fx.dir.file("src/f"), data);
  UnitSender sender({spec_for(fx.dir.file("src/f"), fx.dir.file("dst/.f.dms-t.partial"), 0, data.size(), data.size())},
                    fx.target(), kSecret, SendMethod::Sendfile, 65536);
  sender.corrupt_in_flight(100000);
  auto all = fx.run(sender);
  CHECK(all.size() == 1 && all[0].status == PieceStatus::Mismatch);
  CHECK(all[0].message.find("corrupted in flight") != std::string::npos);
  CHECK(fx.receiver->stats()["checksum_mismatches"] == 1);
}

TEST_CASE("a source that changed is reported and the stream stays in step") {
  Fixture fx;
  std::string data = random_bytes(200000, 6);
  write_file(fx.dir.file("src/f"), data);
  write_file(fx.dir.file("src/g"), "good");
  CopySpec changed = spec_for(fx.dir.file("src/f"), fx.dir.file("dst/.f.dms-t.partial"), 0, data.size(), data.size());
  CopySpec shrunk = changed;
  ::truncate(fx.dir.file("src/f").c_str(), 1000);  // now shorter than planned
  shrunk.check_source = false;                     // so the copy starts and hits the end mid-payload
  UnitSender sender({changed, shrunk, spec_for(fx.dir.file("src/g"), fx.dir.file("dst/.g.dms-t.partial"), 0, 4, 4)},
                    fx.target(), kSecret, SendMethod::ReadSend, 4096);
  auto all = fx.run(sender);
  CHECK(find(all, 0)->status == PieceStatus::SourceChanged);
  CHECK(find(all, 1)->status == PieceStatus::SourceChanged);
  CHECK(find(all, 2)->status == PieceStatus::Ok);
  CHECK(read_file(fx.dir.file("dst/.g.dms-t.partial")) == "good");
}

TEST_CASE("a receiver session on random bytes ends cleanly") {
  TempDir d;
  Roots roots({d.path});
  EventLog log;
  ReceiverCounters counters;
  std::vector<unsigned char> buffer(4096);
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> input(rng() % 300);
    for (auto& c : input) c = static_cast<uint8_t>(rng());
    if (i % 3 == 0 && input.size() >= 4) std::copy(wire::kAuthMagic.begin(), wire::kAuthMagic.end(), input.begin());
    MemoryTransport t(input);
    ReceiverSession s(t, roots, kSecret, log, counters, buffer);
    s.run();
  }
  CHECK(counters.authenticated == 0);
}

TEST_CASE("a stopped receiver ends its sessions and refuses new ones") {
  Fixture fx;
  TcpTransport idle = TcpTransport::connect("", "127.0.0.1", fx.port, 2000);
  uint8_t hello[wire::kHelloSize];
  idle.read_exact(hello, sizeof hello);
  fx.receiver->stop();  // must not wait for the idle peer's timeout
  uint8_t b;
  CHECK(idle.read_some(&b, 1) == 0);
  CHECK_THROWS_AS(TcpTransport::connect("", "127.0.0.1", fx.port, 2000), SystemError);
}

TEST_MAIN()
