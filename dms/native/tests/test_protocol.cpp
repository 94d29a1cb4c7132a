// The wire format: round trips, and every malformed frame refused with a
// ProtocolError (never a crash, never an out-of-range read).
#include <random>

#include "check.hpp"
#include "dms/errors.hpp"
#include "dms/protocol.hpp"

using namespace dms;
using namespace dms::wire;

TEST_CASE("hello and auth round trip") {
  Hello h;
  h.nonce = fresh_nonce();
  auto b = encode_hello(h);
  CHECK(b.size() == kHelloSize);
  CHECK(decode_hello(b.data(), b.size()).nonce == h.nonce);
  Auth a;
  a.nonce = fresh_nonce();
  a.mac = client_proof("0123456789abcdef", h.nonce, a.nonce);
  auto ab = encode_auth(a);
  CHECK(ab.size() == kAuthSize);
  Auth back = decode_auth(ab.data(), ab.size());
  CHECK(back.mac == a.mac && back.nonce == a.nonce);
}

TEST_CASE("proofs depend on the secret, both nonces and the direction") {
  Nonce s = fresh_nonce(), c = fresh_nonce(), other = fresh_nonce();
  Mac p = client_proof("secret-secret-secret", s, c);
  CHECK(macs_equal(p, client_proof("secret-secret-secret", s, c)));
  CHECK(!macs_equal(p, client_proof("secret-secret-secreT", s, c)));
  CHECK(!macs_equal(p, client_proof("secret-secret-secret", other, c)));  // a replay under a new server nonce
  CHECK(!macs_equal(p, client_proof("secret-secret-secret", s, other)));
  CHECK(!macs_equal(p, server_proof("secret-secret-secret", s, c)));
  CHECK(fresh_nonce() != fresh_nonce());
}

TEST_CASE("put round trip and range validation") {
  PutHeader h;
  h.seq = 7;
  h.file_size = 100;
  h.offset = 40;
  h.length = 60;
  h.path = "/dst/.a.dms-x.partial";
  auto b = encode_put(h);
  size_t len = 0;
  PutHeader back = decode_put_fixed(b.data(), b.size(), len);
  CHECK(len == h.path.size() && back.seq == 7 && back.offset == 40 && back.length == 60 && back.file_size == 100);
  h.length = 61;  // past the end of the file
  auto bad = encode_put(h);
  CHECK_THROWS_AS(decode_put_fixed(bad.data(), bad.size(), len), ProtocolError);
  h.length = 60;
  h.offset = UINT64_MAX - 10;  // overflow attempt
  h.file_size = UINT64_MAX;
  auto huge = encode_put(h);
  CHECK_THROWS_AS(decode_put_fixed(huge.data(), huge.size(), len), ProtocolError);
  auto good = encode_put(PutHeader{0, 1, 1, 0, 1, "/x"});
  good[0] = 'X';
  CHECK_THROWS_AS(decode_put_fixed(good.data(), good.size(), len), ProtocolError);
  CHECK_THROWS_AS(decode_put_fixed(good.data(), 10, len), ProtocolError);
  CHECK_THROWS_AS(decode_put_fixed(nullptr, 0, len), ProtocolError);
}

TEST_CASE("wire paths must be absolute and normalized") {
  check_wire_path("/a/b/.c.dms-1.partial");
  CHECK_THROWS_AS(check_wire_path("a/b"), ProtocolError);
  CHECK_THROWS_AS(check_wire_path("/a/../b"), ProtocolError);
  CHECK_THROWS_AS(check_wire_path("/a/./b"), ProtocolError);
  CHECK_THROWS_AS(check_wire_path("/a//b"), ProtocolError);
  CHECK_THROWS_AS(check_wire_path("/a/b/"), ProtocolError);
  CHECK_THROWS_AS(check_wire_path(std::string_view("/a\0b", 4)), ProtocolError);
  CHECK_THROWS_AS(check_wire_path(""), ProtocolError);
}

TEST_CASE("reply round trip; unknown status refused") {
  Reply r;
  r.status = Status::IoError;
  r.seq = 9;
  r.err = 28;
  r.message = "No space left on device";
  auto b = encode_reply(r);
  size_t len = 0;
  Reply back = decode_reply_fixed(b.data(), b.size(), len);
  CHECK(back.status == Status::IoError && back.seq == 9 && back.err == 28 && len == r.message.size());
  b[4] = 200;
  CHECK_THROWS_AS(decode_reply_fixed(b.data(), b.size(), len), ProtocolError);
}

TEST_CASE("random bytes never decode as anything but errors or valid frames") {
  std::mt19937 rng(42);
  std::vector<uint8_t> buf(64);
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    for (auto& c : buf) c = static_cast<uint8_t>(rng());
    if (i % 2) std::copy(kPutMagic.begin(), kPutMagic.end(), buf.begin());
    size_t n = rng() % buf.size(), len = 0;
    try {
      decode_put_fixed(buf.data(), n, len);
      ++parsed;
      CHECK(len >= 1 && len <= kMaxPath);
    } catch (const ProtocolError&) {
    }
  }
  CHECK(parsed < 20000);
}

TEST_MAIN()
