// The only translation unit that compiles xxHash. XXH_NAMESPACE keeps its
// symbols private to DMS, so another extension in the same process that links
// a different xxHash cannot collide with ours.
#define XXH_NAMESPACE dms_
#define XXH_STATIC_LINKING_ONLY
#define XXH_IMPLEMENTATION
#include "xxhash.h"

#include "dms/checksum.hpp"

#include <new>

namespace dms {

std::string Digest::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = kDigits[(high >> (4 * i)) & 0xf];
    out[31 - i] = kDigits[(low >> (4 * i)) & 0xf];
  }
  return out;
}

void Hasher::Free::operator()(XXH3_state_s* s) const noexcept { XXH3_freeState(s); }

Hasher::Hasher() : state_(XXH3_createState()) {
  if (!state_) throw std::bad_alloc();
  reset();
}

Hasher::~Hasher() = default;

void Hasher::update(const void* data, size_t n) { XXH3_128bits_update(state_.get(), data, n); }

Digest Hasher::digest() const {
  XXH128_hash_t h = XXH3_128bits_digest(state_.get());
  return Digest{h.high64, h.low64};
}

void Hasher::reset() { XXH3_128bits_reset(state_.get()); }

Digest digest_of(const void* data, size_t n) {
  XXH128_hash_t h = XXH3_128bits(data, n);
  return Digest{h.high64, h.low64};
}

}  // namespace dms
