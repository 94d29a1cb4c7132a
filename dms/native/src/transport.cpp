#include "dms/transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "dms/errors.hpp"

namespace dms {

namespace {

struct AddrInfo {
  addrinfo* ai = nullptr;
  AddrInfo(const std::string& host, uint16_t port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &ai);
    if (rc != 0)
      throw std::invalid_argument("not a numeric IP address: '" + host + "' (" + ::gai_strerror(rc) + ")");
  }
  ~AddrInfo() {
    if (ai) ::freeaddrinfo(ai);
  }
  AddrInfo(const AddrInfo&) = delete;
  AddrInfo& operator=(const AddrInfo&) = delete;
};

void set_int_option(int fd, int level, int name, int value, const std::string& what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) throw_errno(errno, "setsockopt", what);
}

void set_io_timeout(int fd, int timeout_ms, const std::string& what) {
  timeval tv{};
  tv.tv_sec = timeout_ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>((timeout_ms % 1000) * 1000);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
    throw_errno(errno, "setsockopt", what);
}

// SO_RCVTIMEO/SO_SNDTIMEO expiry shows as EAGAIN; name it for what it is.
[[noreturn]] void throw_io(int err, const char* call, const std::string& peer) {
  if (err == EAGAIN || err == EWOULDBLOCK) err = ETIMEDOUT;
  throw_errno(err, call, peer);
}

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(std::exchange(fd, -1));
}

}  // namespace

std::string format_peer(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "?";
}

bool NetworkTransport::read_exact(void* p, size_t n, bool eof_ok) {
  auto* b = static_cast<unsigned char*>(p);
  size_t done = 0;
  while (done < n) {
    size_t got = read_some(b + done, n - done);
    if (got == 0) {
      if (done == 0 && eof_ok) return false;
      throw ProtocolError("peer " + peer() + " closed the connection in the middle of a frame");
    }
    done += got;
  }
  return true;
}

void NetworkTransport::send_file(int fd, uint64_t offset, size_t n, std::vector<unsigned char>& buffer) {
  size_t done = 0;
  while (done < n) {
    size_t want = std::min(n - done, buffer.size());
    ssize_t r = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "pread", "source");
    }
    if (r == 0) throw SourceChangedError("source ended while being sent");
    write_all(buffer.data(), static_cast<size_t>(r));
    done += static_cast<size_t>(r);
  }
}

TcpTransport TcpTransport::connect(const std::string& bind_address, const std::string& host, uint16_t port,
                                   int timeout_ms) {
  AddrInfo target(host, port, false);
  std::string what = host + ":" + std::to_string(port);
  int fd = ::socket(target.ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw_errno(errno, "socket", what);
  TcpTransport t(fd, what, timeout_ms);
  if (!bind_address.empty()) {
    AddrInfo local(bind_address, 0, true);
    if (::bind(fd, local.ai->ai_addr, local.ai->ai_addrlen) != 0) throw_errno(errno, "bind", bind_address);
  }
  if (::connect(fd, target.ai->ai_addr, target.ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) throw_errno(errno, "connect", what);
    pollfd pfd{fd, POLLOUT, 0};
    int rc;
    do {
      rc = ::poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) throw_errno(errno, "poll", what);
    if (rc == 0) throw_errno(ETIMEDOUT, "connect", what);
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) throw_errno(errno, "getsockopt", what);
    if (err != 0) throw_errno(err, "connect", what);
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) throw_errno(errno, "fcntl", what);
  return t;
}

TcpTransport::TcpTransport(int fd, std::string peer, int timeout_ms) : fd_(fd), peer_(std::move(peer)) {
  try {
    set_int_option(fd_, IPPROTO_TCP, TCP_NODELAY, 1, peer_);  // replies are small and pipelined
    set_timeout(timeout_ms);
  } catch (...) {
    close_fd(fd_);  // the destructor does not run for a constructor that throws
    throw;
  }
}

TcpTransport::TcpTransport(TcpTransport&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), peer_(std::move(other.peer_)), sendfile_ok_(other.sendfile_ok_) {}

TcpTransport::~TcpTransport() {
  shutdown();
  close_fd(fd_);
}

void TcpTransport::set_timeout(int timeout_ms) {
  timeout_ms = std::max(timeout_ms, 1);
  set_io_timeout(fd_, timeout_ms, peer_);
  // SO_SNDTIMEO/SO_RCVTIMEO bound one call; a dead path can still hold a connection for the
  // kernel's retransmission limit (minutes) across calls that each make a little progress,
  // or while the peer's ACKs never come. TCP_USER_TIMEOUT ends the connection once sent
  // data has gone unacknowledged for this long; keepalive probes find a silent peer on an
  // idle connection within about the same time. Both ends set both (TCP sockets only: the
  // unit tests also run this transport over a socketpair).
  int protocol = 0;
  socklen_t len = sizeof protocol;
  if (::getsockopt(fd_, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 || protocol != IPPROTO_TCP) return;
  set_int_option(fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, timeout_ms, peer_);
  set_int_option(fd_, SOL_SOCKET, SO_KEEPALIVE, 1, peer_);
  int idle = std::max(1, timeout_ms / 3000);
  set_int_option(fd_, IPPROTO_TCP, TCP_KEEPIDLE, idle, peer_);
  set_int_option(fd_, IPPROTO_TCP, TCP_KEEPINTVL, std::max(1, idle / 3), peer_);
  set_int_option(fd_, IPPROTO_TCP, TCP_KEEPCNT, 3, peer_);
}

void TcpTransport::shutdown() noexcept {
  // shutdown() acts on the socket, not on this descriptor, so the peer sees the
  // end even if a forked process still holds a copy of the fd.
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void TcpTransport::write_all(const void* p, size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::send(fd_, b + done, n - done, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_io(errno, "send", peer_);
    }
    done += static_cast<size_t>(r);
  }
}

size_t TcpTransport::read_some(void* p, size_t n) {
  for (;;) {
    ssize_t r = ::recv(fd_, p, n, 0);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno == EINTR) continue;
    throw_io(errno, "recv", peer_);
  }
}

bool TcpTransport::readable(int timeout_ms) {
  pollfd pfd{fd_, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) throw_errno(errno, "poll", peer_);
  return rc > 0;
}

void TcpTransport::send_file(int fd, uint64_t offset, size_t n, std::vector<unsigned char>& buffer) {
  if (!sendfile_ok_) return NetworkTransport::send_file(fd, offset, n, buffer);
  auto off = static_cast<off_t>(offset);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::sendfile(fd_, fd, &off, n - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (done == 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        sendfile_ok_ = false;  // this file system cannot; stay on the read/send path
        return NetworkTransport::send_file(fd, offset, n, buffer);
      }
      throw_io(errno, "sendfile", peer_);
    }
    if (r == 0) throw SourceChangedError("source ended while being sent");
    done += static_cast<size_t>(r);
  }
}

void TcpTransport::linger_close() noexcept {
  if (fd_ < 0) return;
  ::shutdown(fd_, SHUT_WR);
  char sink[4096];
  size_t drained = 0;
  pollfd pfd{fd_, POLLIN, 0};
  while (drained < (size_t{1} << 20) && ::poll(&pfd, 1, 1000) > 0) {
    ssize_t r = ::recv(fd_, sink, sizeof sink, MSG_DONTWAIT);
    if (r <= 0) break;
    drained += static_cast<size_t>(r);
  }
}

std::string TcpTransport::local_address() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) throw_errno(errno, "getsockname", peer_);
  return format_peer(reinterpret_cast<sockaddr*>(&ss));
}

void MemoryTransport::write_all(const void* p, size_t n) {
  auto* b = static_cast<const uint8_t*>(p);
  output_.insert(output_.end(), b, b + n);
}

size_t MemoryTransport::read_some(void* p, size_t n) {
  size_t got = std::min(n, input_.size() - at_);
  if (got) std::memcpy(p, input_.data() + at_, got);
  at_ += got;
  return got;
}

Listener::Listener(const std::string& address, uint16_t port, int backlog) : address_(address) {
  AddrInfo local(address, port, true);
  std::string what = address + ":" + std::to_string(port);
  fd_ = ::socket(local.ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw_errno(errno, "socket", what);
  try {
    set_int_option(fd_, SOL_SOCKET, SO_REUSEADDR, 1, what);
    if (::bind(fd_, local.ai->ai_addr, local.ai->ai_addrlen) != 0) throw_errno(errno, "bind", what);
    if (::listen(fd_, backlog) != 0) throw_errno(errno, "listen", what);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) throw_errno(errno, "getsockname", what);
    port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  } catch (...) {
    close_fd(fd_);
    throw;
  }
}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), address_(std::move(other.address_)), port_(other.port_) {}

Listener::~Listener() { close_fd(fd_); }

int Listener::accept(std::string& peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) return -1;
    throw_errno(errno, "accept", address_);
  }
  peer = format_peer(reinterpret_cast<sockaddr*>(&ss));
  return fd;
}

}  // namespace dms
