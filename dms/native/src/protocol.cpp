#include "dms/protocol.hpp"

#include <algorithm>
#include <cstring>

#include "dms/errors.hpp"

namespace dms::wire {

namespace {

class Writer {
 public:
  explicit Writer(size_t reserve) { out_.reserve(reserve); }
  void magic(const Magic& m) { out_.insert(out_.end(), m.begin(), m.end()); }
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { be(v, 2); }
  void u32(uint32_t v) { be(v, 4); }
  void u64(uint64_t v) { be(v, 8); }
  void bytes(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  void digest(const Digest& d) {
    u64(d.high);
    u64(d.low);
  }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  void be(uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n, size_t need, const char* what) : p_(p), n_(n) {
    if (p == nullptr || n < need)
      throw ProtocolError(std::string(what) + ": frame too short (" + std::to_string(n) + " of " +
                          std::to_string(need) + " bytes)");
  }
  void magic(const Magic& m, const char* what) {
    if (std::memcmp(p_ + at_, m.data(), m.size()) != 0) throw ProtocolError(std::string(what) + ": bad magic");
    at_ += m.size();
  }
  uint8_t u8() { return p_[at_++]; }
  uint16_t u16() { return static_cast<uint16_t>(be(2)); }
  uint32_t u32() { return static_cast<uint32_t>(be(4)); }
  uint64_t u64() { return be(8); }
  template <size_t N>
  std::array<uint8_t, N> array() {
    std::array<uint8_t, N> a{};
    std::memcpy(a.data(), p_ + at_, N);
    at_ += N;
    return a;
  }
  Digest digest() {
    Digest d;
    d.high = u64();
    d.low = u64();
    return d;
  }

 private:
  uint64_t be(int width) {
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) v = (v << 8) | p_[at_ + static_cast<size_t>(i)];
    at_ += static_cast<size_t>(width);
    return v;
  }
  const uint8_t* p_;
  size_t n_;
  size_t at_ = 0;
};

void check_version(uint16_t v, const char* what) {
  if (v != kVersion)
    throw ProtocolError(std::string(what) + ": unsupported protocol version " + std::to_string(v) + " (this side speaks " +
                        std::to_string(kVersion) + ")");
}

}  // namespace

const char* status_name(Status s) noexcept {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::BadFrame: return "bad frame";
    case Status::AuthFailed: return "authentication failed";
    case Status::PathRefused: return "path refused";
    case Status::IoError: return "I/O error";
    case Status::ChecksumMismatch: return "checksum mismatch";
    case Status::Busy: return "busy";
  }
  return "unknown status";
}

bool has_magic(const uint8_t* p, size_t n, const Magic& m) noexcept {
  return p != nullptr && n >= m.size() && std::memcmp(p, m.data(), m.size()) == 0;
}

std::vector<uint8_t> encode_hello(const Hello& h) {
  Writer w(kHelloSize);
  w.magic(kHelloMagic);
  w.u16(h.version);
  w.u16(0);
  w.bytes(h.nonce.data(), h.nonce.size());
  return w.take();
}

Hello decode_hello(const uint8_t* p, size_t n) {
  Reader r(p, n, kHelloSize, "hello");
  r.magic(kHelloMagic, "hello");
  Hello h;
  h.version = r.u16();
  check_version(h.version, "hello");
  r.u16();  // flags: none defined in version 1, ignored
  h.nonce = r.array<32>();
  return h;
}

std::vector<uint8_t> encode_auth(const Auth& a) {
  Writer w(kAuthSize);
  w.magic(kAuthMagic);
  w.u16(a.version);
  w.u16(0);
  w.bytes(a.nonce.data(), a.nonce.size());
  w.bytes(a.mac.data(), a.mac.size());
  return w.take();
}

Auth decode_auth(const uint8_t* p, size_t n) {
  Reader r(p, n, kAuthSize, "auth");
  r.magic(kAuthMagic, "auth");
  Auth a;
  a.version = r.u16();
  check_version(a.version, "auth");
  r.u16();
  a.nonce = r.array<32>();
  a.mac = r.array<32>();
  return a;
}

std::vector<uint8_t> encode_auth_ok(const Mac& mac) {
  Writer w(kAuthOkSize);
  w.magic(kAuthOkMagic);
  w.bytes(mac.data(), mac.size());
  return w.take();
}

Mac decode_auth_ok(const uint8_t* p, size_t n) {
  Reader r(p, n, kAuthOkSize, "auth-ok");
  r.magic(kAuthOkMagic, "auth-ok");
  return r.array<32>();
}

std::vector<uint8_t> encode_put(const PutHeader& h) {
  if (h.path.empty() || h.path.size() > kMaxPath) throw std::invalid_argument("put: path length out of range");
  Writer w(kPutFixedSize + h.path.size());
  w.magic(kPutMagic);
  w.u16(h.flags);
  w.u16(static_cast<uint16_t>(h.path.size()));
  w.u64(h.seq);
  w.u64(h.file_size);
  w.u64(h.offset);
  w.u64(h.length);
  w.bytes(h.path.data(), h.path.size());
  return w.take();
}

PutHeader decode_put_fixed(const uint8_t* p, size_t n, size_t& path_len) {
  Reader r(p, n, kPutFixedSize, "put");
  r.magic(kPutMagic, "put");
  PutHeader h;
  h.flags = r.u16();
  path_len = r.u16();
  h.seq = r.u64();
  h.file_size = r.u64();
  h.offset = r.u64();
  h.length = r.u64();
  if ((h.flags & ~kPutSparse) != 0) throw ProtocolError("put: unknown flags " + std::to_string(h.flags));
  if (path_len == 0 || path_len > kMaxPath) throw ProtocolError("put: path length " + std::to_string(path_len) + " out of range 1..4096");
  if (h.file_size > kMaxFileSize) throw ProtocolError("put: file size " + std::to_string(h.file_size) + " too large");
  if (h.offset > h.file_size || h.length > h.file_size - h.offset)
    throw ProtocolError("put: range [" + std::to_string(h.offset) + ", +" + std::to_string(h.length) +
                        ") lies outside the file size " + std::to_string(h.file_size));
  return h;
}

void check_wire_path(std::string_view path) {
  if (path.empty() || path.front() != '/') throw ProtocolError("path is not absolute");
  if (path.find('\0') != std::string_view::npos) throw ProtocolError("path contains a NUL byte");
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = std::min(path.find('/', start), path.size());
    std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      throw ProtocolError("path has an empty, '.' or '..' component");
    start = end + 1;
  }
}

std::vector<uint8_t> encode_trailer(const Digest& d) {
  Writer w(kTrailerSize);
  w.digest(d);
  return w.take();
}

Digest decode_trailer(const uint8_t* p, size_t n) {
  Reader r(p, n, kTrailerSize, "trailer");
  return r.digest();
}

std::vector<uint8_t> encode_reply(const Reply& rep) {
  size_t len = std::min(rep.message.size(), kMaxMessage);
  Writer w(kReplyFixedSize + len);
  w.magic(kReplyMagic);
  w.u8(static_cast<uint8_t>(rep.status));
  w.u8(0);
  w.u16(static_cast<uint16_t>(len));
  w.u64(rep.seq);
  w.u32(rep.err);
  w.digest(rep.digest);
  w.bytes(rep.message.data(), len);
  return w.take();
}

Reply decode_reply_fixed(const uint8_t* p, size_t n, size_t& msg_len) {
  Reader r(p, n, kReplyFixedSize, "reply");
  r.magic(kReplyMagic, "reply");
  Reply rep;
  uint8_t status = r.u8();
  if (status > static_cast<uint8_t>(Status::Busy)) throw ProtocolError("reply: unknown status " + std::to_string(status));
  rep.status = static_cast<Status>(status);
  r.u8();
  msg_len = r.u16();
  if (msg_len > kMaxMessage) throw ProtocolError("reply: message too long");
  rep.seq = r.u64();
  rep.err = r.u32();
  rep.digest = r.digest();
  return rep;
}

std::vector<uint8_t> encode_query(uint16_t flags, const std::vector<QueryEntry>& entries) {
  if (entries.size() > kMaxQueryEntries) throw std::invalid_argument("query: too many entries");
  Writer w(kQueryFixedSize + entries.size() * 64);
  w.magic(kQueryMagic);
  w.u16(flags);
  w.u16(0);
  w.u32(static_cast<uint32_t>(entries.size()));
  for (const QueryEntry& e : entries) {
    if (e.path.empty() || e.path.size() > kMaxPath) throw std::invalid_argument("query: path length out of range");
    w.u16(static_cast<uint16_t>(e.path.size()));
    w.u64(e.size);
    w.u64(static_cast<uint64_t>(e.mtime_ns));
    w.u32(e.mode);
    w.bytes(e.path.data(), e.path.size());
    if (flags & kQueryChecksum) w.digest(e.digest);
  }
  return w.take();
}

uint32_t decode_query_fixed(const uint8_t* p, size_t n, uint16_t& flags) {
  Reader r(p, n, kQueryFixedSize, "query");
  r.magic(kQueryMagic, "query");
  flags = r.u16();
  r.u16();
  uint32_t count = r.u32();
  if ((flags & ~kQueryChecksum) != 0) throw ProtocolError("query: unknown flags " + std::to_string(flags));
  if (count > kMaxQueryEntries) throw ProtocolError("query: " + std::to_string(count) + " entries, at most 10000");
  return count;
}

QueryEntry decode_query_entry(const uint8_t* p, size_t n, size_t& path_len) {
  Reader r(p, n, kQueryEntryFixedSize, "query entry");
  QueryEntry e;
  path_len = r.u16();
  e.size = r.u64();
  e.mtime_ns = static_cast<int64_t>(r.u64());
  e.mode = r.u32();
  if (path_len == 0 || path_len > kMaxPath) throw ProtocolError("query entry: path length out of range");
  return e;
}

Mac client_proof(std::string_view secret, const Nonce& server_nonce, const Nonce& client_nonce) {
  return hmac_sha256(secret, {"dms-v1 client", as_view(server_nonce), as_view(client_nonce)});
}

Mac server_proof(std::string_view secret, const Nonce& server_nonce, const Nonce& client_nonce) {
  return hmac_sha256(secret, {"dms-v1 server", as_view(server_nonce), as_view(client_nonce)});
}

}  // namespace dms::wire
