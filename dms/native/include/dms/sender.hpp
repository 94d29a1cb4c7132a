// UnitSender: the network twin of UnitCopier. It streams a unit's pieces to a
// remote receiver over one authenticated connection, a bounded slice per
// step(), and reports each piece as the receiver acknowledged it. Frames are
// pipelined (up to `window` pieces unacknowledged), so a unit of a thousand
// small files costs about one round trip, not a thousand.
//
// Per-piece problems (a source file that vanished or changed, a path the
// receiver refused, ENOSPC there, a checksum mismatch) are outcomes, like in
// UnitCopier. A broken connection, a failed handshake or a protocol violation
// throws from step(): the caller retries the unit, possibly over another NIC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "dms/checksum.hpp"
#include "dms/copier.hpp"
#include "dms/file.hpp"
#include "dms/protocol.hpp"
#include "dms/transport.hpp"

namespace dms {

enum class SendMethod { ReadSend = 0, Sendfile = 1 };

struct TcpTarget {
  std::string bind_address;  // the source NIC's address ("" = let the kernel choose)
  std::string host;          // the receiver's data-plane address
  uint16_t port = 0;
  int timeout_ms = 60000;
};

// The client half of the handshake (docs/protocol.md); throws AuthError, ProtocolError, SystemError.
void authenticate_client(NetworkTransport& t, const std::string& secret);

// The quick check across clusters: which of `entries` the receiver already has (same size,
// mtime and mode, or with `checksum` the same content). One connection, batches of 10,000.
std::vector<bool> query_up_to_date(const TcpTarget& target, const std::string& secret,
                                   const std::vector<wire::QueryEntry>& entries, bool checksum);

class UnitSender {
 public:
  // Connects lazily, inside the first step(), so no constructor blocks.
  UnitSender(std::vector<CopySpec> specs, TcpTarget target, std::string secret, SendMethod method,
             size_t buffer_size, size_t window = 64);
  // Over an already connected transport (tests, other transports).
  UnitSender(std::vector<CopySpec> specs, std::unique_ptr<NetworkTransport> transport, std::string secret,
             SendMethod method, size_t buffer_size, size_t window = 64);
  UnitSender(const UnitSender&) = delete;
  UnitSender& operator=(const UnitSender&) = delete;
  ~UnitSender();

  std::vector<PieceOutcome> step(uint64_t max_bytes);
  bool done() const noexcept { return next_ >= specs_.size() && pending_.empty(); }
  uint64_t bytes_moved() const noexcept { return bytes_moved_; }
  // "address:port" the connection left from, once connected (tests check the NIC).
  const std::string& local_address() const noexcept { return local_address_; }

  // Test-only fault hook: XOR this byte into the payload at every `every`-th
  // byte sent, after hashing (corruption in flight). 0 disables it.
  void corrupt_in_flight(uint64_t every) noexcept { corrupt_every_ = every; }

 private:
  struct Pending {
    size_t index;
    uint64_t seq;
    Digest sent;
    bool poisoned;
    PieceOutcome local;  // the source-side failure that poisoned the piece
    File source;         // kept open until the reply when the piece's pages are to be dropped
  };
  void connect_and_authenticate();
  bool begin_piece(PieceOutcome& out);
  bool advance(uint64_t budget, uint64_t& used);
  void end_piece(bool poisoned, PieceOutcome local);
  void poison_rest(PieceOutcome local);
  void collect(std::vector<PieceOutcome>& outs, size_t keep_at_most, bool block);
  void drop_replied() noexcept;
  void drop_piece(const File& f, size_t index) const noexcept;  // the piece's range out of the cache
  void send_payload_block(uint64_t offset, size_t n);

  std::vector<CopySpec> specs_;
  TcpTarget target_;
  std::string secret_;
  SendMethod method_;
  std::vector<unsigned char> buffer_;
  size_t window_;
  std::unique_ptr<NetworkTransport> transport_;
  bool authenticated_ = false;
  std::string local_address_;
  size_t next_ = 0;
  bool open_ = false;
  File src_;
  ReadAhead readahead_;
  uint64_t cursor_ = 0;
  Hasher hasher_;
  uint64_t seq_ = 0;
  uint64_t bytes_moved_ = 0;
  uint64_t corrupt_every_ = 0;
  uint64_t corrupt_counter_ = 0;
  std::deque<Pending> pending_;
  std::deque<std::pair<size_t, File>> replied_;  // pieces dropped at their reply, dropped again at the end
};

}  // namespace dms
