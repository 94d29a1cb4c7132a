// The data receiver: accepts authenticated connections on every data-plane
// address of a node and writes PUT frames into staging files under the
// node's allowed roots. One thread per connection (bounded), one buffer per
// connection, so memory stays bounded whatever the file sizes. Every refusal
// is logged with the peer and the reason, and never stops other transfers.
//
// ReceiverSession holds the per-connection protocol logic over any
// NetworkTransport, so tests and the fuzzer can drive it on a byte buffer.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dms/confine.hpp"
#include "dms/protocol.hpp"
#include "dms/transport.hpp"

namespace dms {

// Levels are Python logging's, so the wrapper logs them as they are.
enum class LogLevel { Debug = 10, Info = 20, Warning = 30, Error = 40 };

struct ReceiverEvent {
  LogLevel level;
  std::string message;
};

// A bounded, thread-safe log the Python side drains; the oldest events are
// dropped (and counted) if nobody drains it.
class EventLog {
 public:
  explicit EventLog(size_t capacity = 10000) : capacity_(capacity) {}
  void add(LogLevel level, std::string message);
  std::vector<ReceiverEvent> drain();
  uint64_t dropped() const noexcept { return dropped_.load(); }

 private:
  std::mutex mu_;
  std::deque<ReceiverEvent> events_;
  size_t capacity_;
  std::atomic<uint64_t> dropped_{0};
};

struct ReceiverCounters {
  std::atomic<uint64_t> connections{0}, authenticated{0}, auth_failures{0}, bad_frames{0}, refused{0},
      io_errors{0}, checksum_mismatches{0}, pieces_ok{0}, bytes_received{0}, busy{0}, sessions_failed{0}, queries{0};
  std::map<std::string, uint64_t> snapshot() const;
};

class ReceiverSession {
 public:
  // `previous`: a second secret also accepted (empty: none), so secrets rotate node by node.
  ReceiverSession(NetworkTransport& transport, const Roots& roots, std::string_view secret, EventLog& log,
                  ReceiverCounters& counters, std::vector<unsigned char>& buffer, std::string_view previous = {});
  // Handshake, then frames until the peer ends or breaks the protocol. Never
  // throws: every way a session ends is counted and logged.
  void run() noexcept;
  bool handshake();  // false: refused, answered and logged
  void serve();      // throws on a broken connection

 private:
  void handle_put(wire::PutHeader& h);
  bool handle_query(const uint8_t* fixed);  // false: the frame was refused, the session ends
  bool up_to_date(const wire::QueryEntry& e, bool checksum);
  void reply(const wire::Reply& r);
  void refuse_frame(const std::string& why);
  NetworkTransport& t_;
  const Roots& roots_;
  std::string_view secret_;
  std::string_view previous_;
  EventLog& log_;
  ReceiverCounters& counters_;
  std::vector<unsigned char>& buffer_;
};

struct ReceiverConfig {
  std::vector<std::pair<std::string, uint16_t>> listen;  // numeric address, port (0 = any free port)
  std::vector<std::string> roots;
  std::string secret;
  std::string previous_secret;  // also accepted while secrets rotate (empty: none)
  size_t max_connections = 64;
  int handshake_timeout_ms = 10000;
  int idle_timeout_ms = 120000;
  size_t buffer_size = 1 << 20;
};

class TcpReceiver {
 public:
  explicit TcpReceiver(ReceiverConfig config);  // binds every address now, so errors show at start
  ~TcpReceiver();
  TcpReceiver(const TcpReceiver&) = delete;
  TcpReceiver& operator=(const TcpReceiver&) = delete;

  void start();
  void stop() noexcept;  // closes listeners, ends sessions, joins every thread
  std::vector<std::string> addresses() const;  // "address:port", as bound
  std::vector<ReceiverEvent> drain_events() { return log_.drain(); }
  std::map<std::string, uint64_t> stats() const;

 private:
  struct Session {
    std::thread thread;
    int fd = -1;  // for shutdown() from stop(); -1 once the session closes it
    std::atomic<bool> done{false};
  };
  void accept_loop();
  void serve(Session* s, int fd, std::string peer);
  void reap(bool all);

  ReceiverConfig config_;
  Roots roots_;
  std::vector<Listener> listeners_;
  int wake_fd_ = -1;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::mutex mu_;
  std::list<Session> sessions_;
  EventLog log_;
  ReceiverCounters counters_;
};

}  // namespace dms
