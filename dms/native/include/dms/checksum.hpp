// Chunk digests: XXH3-128 from the vendored xxHash (the hash rsync links; see
// docs/decisions/0002-checksum-xxh3.md). Non-cryptographic on purpose: it
// detects corruption at memory speed; authenticity is the data plane's job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct XXH3_state_s;

namespace dms {

struct Digest {
  uint64_t high = 0;
  uint64_t low = 0;
  std::string hex() const;  // 32 lowercase hex digits, high word first
  bool operator==(const Digest&) const = default;
};

class Hasher {
 public:
  Hasher();
  Hasher(Hasher&&) noexcept = default;
  Hasher& operator=(Hasher&&) noexcept = default;
  ~Hasher();
  void update(const void* data, size_t n);
  Digest digest() const;
  void reset();

 private:
  struct Free {
    void operator()(XXH3_state_s* s) const noexcept;
  };
  std::unique_ptr<XXH3_state_s, Free> state_;
};

Digest digest_of(const void* data, size_t n);

}  // namespace dms
