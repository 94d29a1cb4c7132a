// NetworkTransport: a connected, reliable byte stream between a sender and a
// receiver (the reference design's interface). TcpTransport is the TCP
// implementation: the sender binds its socket to the chosen data-plane NIC's
// address before connecting, so the bytes leave through that NIC (see
// decision 0023, F12). An RDMA transport would implement the
// same four calls. MemoryTransport (tests, fuzzing) replays a byte buffer.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dms {

class NetworkTransport {
 public:
  virtual ~NetworkTransport() = default;
  // Writes all n bytes or throws (SystemError: EPIPE, ECONNRESET, ETIMEDOUT).
  virtual void write_all(const void* p, size_t n) = 0;
  // Reads at least 1 and at most n bytes; 0 means the peer closed cleanly.
  virtual size_t read_some(void* p, size_t n) = 0;
  // Whether read_some would not block, waiting at most timeout_ms.
  virtual bool readable(int timeout_ms) = 0;
  // Sends n bytes of fd at offset; the default reads through `buffer`.
  virtual void send_file(int fd, uint64_t offset, size_t n, std::vector<unsigned char>& buffer);
  // Ends the stream in both directions (also when other fds share the socket).
  virtual void shutdown() noexcept {}
  // After a refusal: send FIN, then read and discard what the peer still sends
  // (bounded), so closing does not turn into a reset that destroys the answer.
  virtual void linger_close() noexcept {}
  virtual std::string peer() const { return "?"; }

  // Reads exactly n bytes. Returns false only if the peer closed before the
  // first byte and `eof_ok`; a close after that is a ProtocolError.
  bool read_exact(void* p, size_t n, bool eof_ok = false);
};

class TcpTransport final : public NetworkTransport {
 public:
  // Connects to host:port from bind_address (numeric IPv4/IPv6; "" binds
  // nothing). timeout_ms bounds the connect and every later send or receive.
  static TcpTransport connect(const std::string& bind_address, const std::string& host, uint16_t port, int timeout_ms);
  // Adopts an accepted socket.
  TcpTransport(int fd, std::string peer, int timeout_ms);
  TcpTransport(TcpTransport&& other) noexcept;
  TcpTransport& operator=(TcpTransport&&) = delete;
  TcpTransport(const TcpTransport&) = delete;
  ~TcpTransport() override;

  void write_all(const void* p, size_t n) override;
  size_t read_some(void* p, size_t n) override;
  bool readable(int timeout_ms) override;
  void send_file(int fd, uint64_t offset, size_t n, std::vector<unsigned char>& buffer) override;
  void shutdown() noexcept override;
  void linger_close() noexcept override;
  std::string peer() const override { return peer_; }
  void set_timeout(int timeout_ms);
  int fd() const noexcept { return fd_; }
  std::string local_address() const;

 private:
  int fd_ = -1;
  std::string peer_;
  bool sendfile_ok_ = true;
};

// Reads from a fixed buffer, writes into a vector: protocol tests and the fuzzer.
class MemoryTransport final : public NetworkTransport {
 public:
  explicit MemoryTransport(std::vector<uint8_t> input) : input_(std::move(input)) {}
  void write_all(const void* p, size_t n) override;
  size_t read_some(void* p, size_t n) override;
  bool readable(int) override { return true; }
  const std::vector<uint8_t>& output() const noexcept { return output_; }

 private:
  std::vector<uint8_t> input_;
  size_t at_ = 0;
  std::vector<uint8_t> output_;
};

// Listening socket on a numeric address; port 0 picks a free port.
class Listener {
 public:
  Listener(const std::string& address, uint16_t port, int backlog = 128);
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&&) = delete;
  Listener(const Listener&) = delete;
  ~Listener();
  int fd() const noexcept { return fd_; }
  uint16_t port() const noexcept { return port_; }
  const std::string& address() const noexcept { return address_; }
  // Accepts one connection; returns -1 on EAGAIN/ECONNABORTED.
  int accept(std::string& peer);

 private:
  int fd_ = -1;
  std::string address_;
  uint16_t port_ = 0;
};

std::string format_peer(const ::sockaddr* sa);

}  // namespace dms
