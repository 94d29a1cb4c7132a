#include "dms/receiver.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>

#include "dms/checksum.hpp"
#include "dms/copier.hpp"
#include "dms/errors.hpp"
#include "dms/io.hpp"

namespace dms {

void EventLog::add(LogLevel level, std::string message) {
  std::lock_guard lock(mu_);
  if (events_.size() >= capacity_) {
    events_.pop_front();
    ++dropped_;
  }
  events_.push_back({level, std::move(message)});
}

std::vector<ReceiverEvent> EventLog::drain() {
  std::lock_guard lock(mu_);
  std::vector<ReceiverEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

std::map<std::string, uint64_t> ReceiverCounters::snapshot() const {
  return {{"connections", connections},
          {"authenticated", authenticated},
          {"auth_failures", auth_failures},
          {"bad_frames", bad_frames},
          {"refused", refused},
          {"io_errors", io_errors},
          {"checksum_mismatches", checksum_mismatches},
          {"pieces_ok", pieces_ok},
          {"bytes_received", bytes_received},
          {"busy", busy},
          {"sessions_failed", sessions_failed},
          {"queries", queries}};
}

ReceiverSession::ReceiverSession(NetworkTransport& transport, const Roots& roots, std::string_view secret,
                                 EventLog& log, ReceiverCounters& counters, std::vector<unsigned char>& buffer,
                                 std::string_view previous)
    : t_(transport),
      roots_(roots),
      secret_(secret),
      previous_(previous),
      log_(log),
      counters_(counters),
      buffer_(buffer) {}

void ReceiverSession::run() noexcept {
  try {
    if (handshake()) serve();
  } catch (const std::exception& e) {
    ++counters_.sessions_failed;
    try {
      log_.add(LogLevel::Warning, "peer " + t_.peer() + ": connection dropped: " + e.what());
    } catch (...) {
    }
  } catch (...) {
    ++counters_.sessions_failed;
  }
}

void ReceiverSession::reply(const wire::Reply& r) {
  auto frame = wire::encode_reply(r);
  t_.write_all(frame.data(), frame.size());
}

void ReceiverSession::refuse_frame(const std::string& why) {
  ++counters_.bad_frames;
  log_.add(LogLevel::Warning, "peer " + t_.peer() + ": refused: " + why + "; closing the connection");
  wire::Reply r;
  r.status = wire::Status::BadFrame;
  r.message = why;
  try {
    reply(r);
  } catch (const std::exception&) {  // the peer may be gone already: the log says it all
  }
  t_.linger_close();
}

bool ReceiverSession::handshake() {
  wire::Hello hello;
  hello.nonce = fresh_nonce();
  auto frame = wire::encode_hello(hello);
  t_.write_all(frame.data(), frame.size());
  uint8_t buf[wire::kAuthSize];
  if (!t_.read_exact(buf, wire::kMagicSize, true)) {
    log_.add(LogLevel::Info, "peer " + t_.peer() + ": closed before authenticating");
    return false;
  }
  if (!wire::has_magic(buf, wire::kMagicSize, wire::kAuthMagic)) {
    refuse_frame("the first frame is not a DMS handshake");
    return false;
  }
  t_.read_exact(buf + wire::kMagicSize, sizeof buf - wire::kMagicSize);
  wire::Auth auth;
  try {
    auth = wire::decode_auth(buf, sizeof buf);
  } catch (const ProtocolError& e) {
    refuse_frame(e.what());
    return false;
  }
  // The current secret, else the previous one (a peer not rotated yet); the proof we send
  // back is made with the secret the peer used, so it can check us too.
  std::string_view used = secret_;
  bool known = macs_equal(auth.mac, wire::client_proof(secret_, hello.nonce, auth.nonce));
  if (!known && !previous_.empty() && macs_equal(auth.mac, wire::client_proof(previous_, hello.nonce, auth.nonce))) {
    known = true;
    used = previous_;
  }
  if (!known) {
    ++counters_.auth_failures;
    log_.add(LogLevel::Warning, "peer " + t_.peer() +
                                    ": refused: authentication failed (wrong secret, or a replayed handshake)");
    wire::Reply r;
    r.status = wire::Status::AuthFailed;
    r.message = "authentication failed";
    try {
      reply(r);
    } catch (const std::exception&) {
    }
    t_.linger_close();
    return false;
  }
  auto ok = wire::encode_auth_ok(wire::server_proof(used, hello.nonce, auth.nonce));
  t_.write_all(ok.data(), ok.size());
  ++counters_.authenticated;
  return true;
}

void ReceiverSession::serve() {
  for (;;) {
    uint8_t fixed[wire::kPutFixedSize];
    if (!t_.read_exact(fixed, wire::kMagicSize, true)) return;  // the sender is done
    if (wire::has_magic(fixed, wire::kMagicSize, wire::kQueryMagic)) {
      t_.read_exact(fixed + wire::kMagicSize, wire::kQueryFixedSize - wire::kMagicSize);
      if (!handle_query(fixed)) return;
      continue;
    }
    t_.read_exact(fixed + wire::kMagicSize, sizeof fixed - wire::kMagicSize);
    size_t path_len = 0;
    wire::PutHeader h;
    try {
      h = wire::decode_put_fixed(fixed, sizeof fixed, path_len);
    } catch (const ProtocolError& e) {
      refuse_frame(e.what());
      return;
    }
    h.path.resize(path_len);
    t_.read_exact(h.path.data(), path_len);
    handle_put(h);
  }
}

bool ReceiverSession::handle_query(const uint8_t* fixed) {
  uint16_t flags = 0;
  uint32_t count = 0;
  try {
    count = wire::decode_query_fixed(fixed, wire::kQueryFixedSize, flags);
  } catch (const ProtocolError& e) {
    refuse_frame(e.what());
    return false;
  }
  std::vector<uint8_t> bits((count + 7) / 8, 0);
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t head[wire::kQueryEntryFixedSize];
    t_.read_exact(head, sizeof head);
    size_t path_len = 0;
    wire::QueryEntry e;
    try {
      e = wire::decode_query_entry(head, sizeof head, path_len);
    } catch (const ProtocolError& ex) {
      refuse_frame(ex.what());
      return false;
    }
    e.path.resize(path_len);
    t_.read_exact(e.path.data(), path_len);
    if (flags & wire::kQueryChecksum) {
      uint8_t d[wire::kTrailerSize];
      t_.read_exact(d, sizeof d);
      e.digest = wire::decode_trailer(d, sizeof d);
    }
    if (up_to_date(e, flags & wire::kQueryChecksum)) bits[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  }
  std::vector<uint8_t> out{'D', 'M', 'S', 'W', static_cast<uint8_t>(count >> 24), static_cast<uint8_t>(count >> 16),
                           static_cast<uint8_t>(count >> 8), static_cast<uint8_t>(count)};
  out.insert(out.end(), bits.begin(), bits.end());
  t_.write_all(out.data(), out.size());
  ++counters_.queries;
  return true;
}

// The quick check at the destination: same size, mtime and permission bits (or, with
// checksum, same content). Only below the roots, never through a symlink, read only.
bool ReceiverSession::up_to_date(const wire::QueryEntry& e, bool checksum) {
  // open_existing refuses a staging name: it is never data (the walk skips them too).
  File f = roots_.open_existing(e.path);
  if (!f) return false;
  struct stat st {};
  if (::fstat(f.fd(), &st) != 0 || static_cast<uint64_t>(st.st_size) != e.size) return false;
  if (!checksum) {
    return ns_of(st.st_mtim) == e.mtime_ns && (st.st_mode & 07777) == e.mode;
  }
  Hasher h;
  uint64_t done = 0;
  while (done < e.size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), e.size - done));
    size_t got;
    try {
      got = pread_full(f, buffer_.data(), want, static_cast<off_t>(done));
    } catch (const SystemError&) {
      return false;
    }
    h.update(buffer_.data(), got);
    done += got;
    if (got < want) return false;
  }
  return h.digest() == e.digest;
}

void ReceiverSession::handle_put(wire::PutHeader& h) {
  wire::Reply r;
  r.seq = h.seq;
  StagingFile staged;
  File& f = staged.file;
  bool writing = false;
  // The first I/O failure of the piece is its answer; the rest of the payload is read, not written.
  auto fail_io_with = [&](uint32_t err, std::string message, LogLevel level) {
    writing = false;
    if (r.status != wire::Status::Ok) return;
    ++counters_.io_errors;
    r.status = wire::Status::IoError;
    r.err = err;
    r.message = std::move(message);
    log_.add(level, "peer " + t_.peer() + ": " + r.message);
  };
  auto fail_io = [&](const SystemError& e) {
    fail_io_with(static_cast<uint32_t>(e.code().value()), e.what(), LogLevel::Error);
  };
  try {
    staged = roots_.open_staging_file(h.path);
    truncate_to(f, h.file_size);  // every piece sets the final size: pieces may come in any order, or twice
    writing = true;
  } catch (const ConfinementError& e) {
    ++counters_.refused;
    r.status = wire::Status::PathRefused;
    r.message = e.what();
    log_.add(LogLevel::Warning, "peer " + t_.peer() + ": " + e.what());
  } catch (const SystemError& e) {
    fail_io(e);
  }
  Hasher hasher;
  auto checked = std::chrono::steady_clock::now();
  uint64_t remaining = h.length;
  uint64_t off = h.offset;
  while (remaining > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), remaining));
    size_t got = t_.read_some(buffer_.data(), want);
    if (got == 0) throw ProtocolError("peer " + t_.peer() + " closed the connection in the middle of a payload");
    hasher.update(buffer_.data(), got);
    auto now = std::chrono::steady_clock::now();
    bool check = now - checked >= kStagedCheckEvery;  // before every write (copier.hpp)
    if (check) checked = now;
    if (writing && check && !staged.still_staged()) {
      // The read may have waited for a long time (the sender was stopped): meanwhile the
      // request was finished elsewhere and finalize renamed this file into place. Writing
      // on would change a published file; drop the rest of the piece instead.
      fail_io_with(ESTALE, h.path + ": the staging file was published or removed while this piece arrived; not written",
                   LogLevel::Warning);
    }
    if (writing) {
      try {
        if (h.flags & wire::kPutSparse)
          pwrite_sparse(f, buffer_.data(), got, static_cast<off_t>(off));
        else
          pwrite_full(f, buffer_.data(), got, static_cast<off_t>(off));
      } catch (const SystemError& e) {
        fail_io(e);  // keep reading: the stream must stay in step for the next frame
      }
    }
    off += got;
    remaining -= got;
  }
  uint8_t trailer[wire::kTrailerSize];
  t_.read_exact(trailer, sizeof trailer);
  Digest expected = wire::decode_trailer(trailer, sizeof trailer);
  r.digest = hasher.digest();
  if (r.status == wire::Status::Ok && !(r.digest == expected)) {
    ++counters_.checksum_mismatches;
    r.status = wire::Status::ChecksumMismatch;
    r.message = "payload hashes to " + r.digest.hex() + ", the sender's trailer says " + expected.hex();
    log_.add(LogLevel::Warning, "peer " + t_.peer() + ": " + h.path + ": " + r.message);
  }
  if (writing && r.status == wire::Status::Ok && h.length >= kWriteBehindBytes)  // write-behind, as the copier
    ::sync_file_range(f.fd(), static_cast<off_t>(h.offset), static_cast<off_t>(h.length), SYNC_FILE_RANGE_WRITE);
  if (writing) {
    try {
      f.close();  // reports deferred write errors (NFS, quota)
    } catch (const SystemError& e) {
      fail_io(e);
    }
  }
  if (r.status == wire::Status::Ok) {
    ++counters_.pieces_ok;
    counters_.bytes_received += h.length;
  }
  reply(r);
}

TcpReceiver::TcpReceiver(ReceiverConfig config) : config_(std::move(config)), roots_(config_.roots) {
  if (config_.secret.size() < 16) throw std::invalid_argument("the data-plane secret must be at least 16 bytes");
  if (config_.listen.empty()) throw std::invalid_argument("the receiver needs at least one address");
  if (config_.buffer_size == 0 || config_.buffer_size > (1u << 30)) throw std::invalid_argument("bad buffer_size");
  for (const auto& [address, port] : config_.listen) listeners_.emplace_back(address, port);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw_errno(errno, "eventfd", "receiver");
}

TcpReceiver::~TcpReceiver() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

std::vector<std::string> TcpReceiver::addresses() const {
  std::vector<std::string> out;
  for (const Listener& l : listeners_)
    out.push_back((l.address().find(':') != std::string::npos ? "[" + l.address() + "]" : l.address()) + ":" +
                  std::to_string(l.port()));
  return out;
}

std::map<std::string, uint64_t> TcpReceiver::stats() const {
  auto s = counters_.snapshot();
  s["events_dropped"] = log_.dropped();
  return s;
}

void TcpReceiver::start() {
  if (started_) return;
  started_ = true;
  acceptor_ = std::thread([this] { accept_loop(); });
  for (const std::string& a : addresses()) log_.add(LogLevel::Info, "receiving on " + a);
}

void TcpReceiver::stop() noexcept {
  if (!started_ || stopping_.exchange(true)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wake_fd_, &one, sizeof one);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(mu_);
    for (Session& s : sessions_)
      if (s.fd >= 0) ::shutdown(s.fd, SHUT_RDWR);
  }
  reap(true);
  listeners_.clear();
}

void TcpReceiver::reap(bool all) {
  std::list<Session> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      auto here = it++;
      if (all || here->done.load()) finished.splice(finished.end(), sessions_, here);
    }
  }
  for (Session& s : finished)
    if (s.thread.joinable()) s.thread.join();
}

void TcpReceiver::accept_loop() {
  std::vector<pollfd> fds;
  for (const Listener& l : listeners_) fds.push_back({l.fd(), POLLIN, 0});
  fds.push_back({wake_fd_, POLLIN, 0});
  while (!stopping_.load()) {
    for (pollfd& p : fds) p.revents = 0;
    int rc = ::poll(fds.data(), fds.size(), 1000);
    reap(false);
    if (rc < 0) {
      if (errno == EINTR) continue;
      log_.add(LogLevel::Error, std::string("receiver: poll failed: ") + std::strerror(errno));
      return;
    }
    if (fds.back().revents) return;  // stop() woke us
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      std::string peer;
      int fd;
      try {
        fd = listeners_[i].accept(peer);
      } catch (const std::exception& e) {
        log_.add(LogLevel::Error, std::string("receiver: ") + e.what());
        continue;
      }
      if (fd < 0) continue;
      ++counters_.connections;
      std::lock_guard lock(mu_);
      size_t active = 0;
      for (const Session& s : sessions_) active += s.done.load() ? 0 : 1;
      if (active >= config_.max_connections) {
        ++counters_.busy;
        log_.add(LogLevel::Warning, "peer " + peer + ": refused: " + std::to_string(active) +
                                        " connections already (max_connections)");
        wire::Reply r;
        r.status = wire::Status::Busy;
        r.message = "too many connections";
        auto frame = wire::encode_reply(r);
        [[maybe_unused]] ssize_t w = ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::shutdown(fd, SHUT_RDWR);
        ::close(fd);
        continue;
      }
      Session& s = sessions_.emplace_back();
      s.fd = fd;
      s.thread = std::thread([this, sp = &s, fd, peer] { serve(sp, fd, peer); });
    }
  }
}

void TcpReceiver::serve(Session* s, int fd, std::string peer) {
  try {
    TcpTransport t(fd, peer, config_.handshake_timeout_ms);
    std::vector<unsigned char> buffer(config_.buffer_size);
    ReceiverSession session(t, roots_, config_.secret, log_, counters_, buffer, config_.previous_secret);
    bool ok = false;
    try {
      ok = session.handshake();
    } catch (const std::exception& e) {
      ++counters_.sessions_failed;
      log_.add(LogLevel::Warning, "peer " + peer + ": handshake failed: " + e.what());
    }
    if (ok) {
      t.set_timeout(config_.idle_timeout_ms);
      try {
        session.serve();
      } catch (const std::exception& e) {
        ++counters_.sessions_failed;
        log_.add(LogLevel::Warning, "peer " + peer + ": connection dropped: " + e.what());
      }
    }
    std::lock_guard lock(mu_);
    s->fd = -1;  // before t closes it, so stop() never shuts down a reused descriptor
  } catch (const std::exception& e) {  // the transport (and with it the fd) is gone already
    std::lock_guard lock(mu_);
    s->fd = -1;
    log_.add(LogLevel::Error, "peer " + peer + ": " + e.what());
  }
  s->done = true;
}

}  // namespace dms
