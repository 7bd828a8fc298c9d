// The mbedTLS P-256 engine (meson option p256=mbedtls): mbedTLS's own code serves P-256, so
// there is nothing to set up and no driver operation to count.
#include "backend.hpp"
#include "dstack/crypto/p256.hpp"

namespace dstack::crypto {

std::string_view p256_engine() { return "mbedtls"; }
std::uint64_t p256_engine_operations() { return 0; }

namespace detail {
Result<void> ensure_p256_engine() { return {}; }
}  // namespace detail

}  // namespace dstack::crypto
