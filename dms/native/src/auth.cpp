#include "dms/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cerrno>
#include <stdexcept>
#include <string>

#include "dms/errors.hpp"

namespace dms {

Mac hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts) {
  std::string message;
  for (std::string_view p : parts) message.append(p);
  Mac out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
           message.size(), out.data(), &len) == nullptr ||
      len != out.size())
    throw std::runtime_error("HMAC-SHA256 failed in libcrypto");
  return out;
}

Nonce fresh_nonce() {
  Nonce n{};
  size_t done = 0;
  while (done < n.size()) {
    ssize_t r = ::getrandom(n.data() + done, n.size() - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "getrandom", "");
    }
    done += static_cast<size_t>(r);
  }
  return n;
}

bool macs_equal(const Mac& a, const Mac& b) noexcept { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

}  // namespace dms
