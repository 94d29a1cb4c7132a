// Data-plane authentication primitives: HMAC-SHA256 from OpenSSL's libcrypto
// (the library every distribution keeps patched; hand-written crypto is not a
// place to save a dependency), fresh nonces from getrandom(2), and a
// constant-time comparison. The handshake that uses them is in protocol.hpp.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace dms {

using Mac = std::array<uint8_t, 32>;
using Nonce = std::array<uint8_t, 32>;

// HMAC-SHA256(key, part1 || part2 || ...).
Mac hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts);

// 32 bytes from the kernel's CSPRNG; throws SystemError if it cannot.
Nonce fresh_nonce();

// Compares in time independent of where the inputs differ.
bool macs_equal(const Mac& a, const Mac& b) noexcept;

inline std::string_view as_view(const std::array<uint8_t, 32>& a) noexcept {
  return {reinterpret_cast<const char*>(a.data()), a.size()};
}

}  // namespace dms
