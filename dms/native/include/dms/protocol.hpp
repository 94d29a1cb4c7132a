// The DMS data-plane wire format (docs/protocol.md is the normative text).
// Pure encoding and decoding: no sockets here, so the parser can be unit
// tested and fuzzed on byte buffers. Every decode_* validates completely and
// throws ProtocolError for anything that does not parse; nothing is trusted
// before that. All integers are big-endian.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dms/auth.hpp"
#include "dms/checksum.hpp"

namespace dms::wire {

constexpr uint16_t kVersion = 1;
constexpr size_t kHelloSize = 40;       // "DMSH" version:u16 flags:u16 server_nonce[32]
constexpr size_t kAuthSize = 72;        // "DMSA" version:u16 flags:u16 client_nonce[32] mac[32]
constexpr size_t kAuthOkSize = 36;      // "DMSK" mac[32]
constexpr size_t kPutFixedSize = 40;    // "DMSP" flags:u16 path_len:u16 seq:u64 file_size:u64 offset:u64 length:u64
constexpr size_t kTrailerSize = 16;     // digest of the payload: high:u64 low:u64
constexpr size_t kReplyFixedSize = 36;  // "DMSR" status:u8 pad:u8 msg_len:u16 seq:u64 errno:u32 digest[16]
constexpr size_t kMagicSize = 4;
constexpr size_t kMaxPath = 4096;
constexpr size_t kMaxMessage = 1024;
constexpr uint64_t kMaxFileSize = uint64_t{1} << 62;
constexpr uint16_t kPutSparse = 0x1;  // PUT flag: the receiver turns zero blocks into holes

// What a receiver answers. Values are part of the wire format: never renumber.
enum class Status : uint8_t {
  Ok = 0,
  BadFrame = 1,          // the frame does not parse; the receiver closes the connection
  AuthFailed = 2,        // the handshake's MAC is wrong; closed
  PathRefused = 3,       // the path lies outside the receiver's roots or is not a staging file
  IoError = 4,           // the receiver could not write (errno says why)
  ChecksumMismatch = 5,  // the payload does not hash to the trailer's digest
  Busy = 6,              // too many connections; closed, try again later
};
const char* status_name(Status s) noexcept;

struct Hello {
  uint16_t version = kVersion;
  Nonce nonce{};
};

struct Auth {
  uint16_t version = kVersion;
  Nonce nonce{};
  Mac mac{};
};

struct PutHeader {
  uint16_t flags = 0;
  uint64_t seq = 0;
  uint64_t file_size = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string path;  // absolute path of the destination staging file
};

struct Reply {
  Status status = Status::Ok;
  uint64_t seq = 0;
  uint32_t err = 0;  // errno on the receiver, for IoError
  Digest digest;     // of the bytes the receiver got (Ok, ChecksumMismatch)
  std::string message;
};

using Magic = std::array<char, kMagicSize>;
inline constexpr Magic kHelloMagic{'D', 'M', 'S', 'H'};
inline constexpr Magic kAuthMagic{'D', 'M', 'S', 'A'};
inline constexpr Magic kAuthOkMagic{'D', 'M', 'S', 'K'};
inline constexpr Magic kPutMagic{'D', 'M', 'S', 'P'};
inline constexpr Magic kReplyMagic{'D', 'M', 'S', 'R'};
inline constexpr Magic kQueryMagic{'D', 'M', 'S', 'Q'};
inline constexpr Magic kAnswerMagic{'D', 'M', 'S', 'W'};

// QUERY: "is this file already at the destination?" for a batch of files (the
// quick check across clusters). Header 12 bytes: "DMSQ" flags:u16 pad:u16 count:u32;
// then per entry 22 bytes: path_len:u16 size:u64 mtime_ns:i64 mode:u32, the path,
// and with kQueryChecksum the 16-byte digest of the source's content.
// ANSWER: "DMSW" count:u32, then ceil(count / 8) bytes, bit i (LSB first) set
// when entry i is up to date.
constexpr size_t kQueryFixedSize = 12;
constexpr size_t kQueryEntryFixedSize = 22;
constexpr uint32_t kMaxQueryEntries = 10000;
constexpr uint16_t kQueryChecksum = 0x1;

struct QueryEntry {
  std::string path;  // absolute final path at the destination
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint32_t mode = 0;  // permission bits
  Digest digest;      // with kQueryChecksum
};

std::vector<uint8_t> encode_query(uint16_t flags, const std::vector<QueryEntry>& entries);
// Decodes the 12-byte header; returns the count (<= kMaxQueryEntries) and sets flags.
uint32_t decode_query_fixed(const uint8_t* p, size_t n, uint16_t& flags);
// Decodes an entry's 22 fixed bytes; sets path_len (1..kMaxPath).
QueryEntry decode_query_entry(const uint8_t* p, size_t n, size_t& path_len);

std::vector<uint8_t> encode_hello(const Hello& h);
Hello decode_hello(const uint8_t* p, size_t n);

std::vector<uint8_t> encode_auth(const Auth& a);
Auth decode_auth(const uint8_t* p, size_t n);

std::vector<uint8_t> encode_auth_ok(const Mac& mac);
Mac decode_auth_ok(const uint8_t* p, size_t n);

// The fixed part plus the path; the payload and trailer follow on the wire.
std::vector<uint8_t> encode_put(const PutHeader& h);
// Decodes the fixed part; returns the header with an empty path and sets
// path_len. Validates the ranges (offset + length <= file_size, path_len).
PutHeader decode_put_fixed(const uint8_t* p, size_t n, size_t& path_len);
// Checks a path read off the wire: absolute, no NUL, no empty, "." or ".."
// component. Throws ProtocolError naming what is wrong.
void check_wire_path(std::string_view path);

std::vector<uint8_t> encode_trailer(const Digest& d);
Digest decode_trailer(const uint8_t* p, size_t n);

std::vector<uint8_t> encode_reply(const Reply& r);
// Decodes the fixed part and sets msg_len; the message follows.
Reply decode_reply_fixed(const uint8_t* p, size_t n, size_t& msg_len);

bool has_magic(const uint8_t* p, size_t n, const Magic& m) noexcept;

// The handshake's proofs. Labels keep a client proof from ever being valid as
// a server proof (and the other way round).
Mac client_proof(std::string_view secret, const Nonce& server_nonce, const Nonce& client_nonce);
Mac server_proof(std::string_view secret, const Nonce& server_nonce, const Nonce& client_nonce);

}  // namespace dms::wire
