// Secure random bytes and one-time initialisation of the crypto backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

// Initialises PSA Crypto and libsodium, once per process (thread-safe): the program's only
// psa_crypto_init. Every function of this layer calls it itself; net's TLS configuration calls it
// because mbedTLS's TLS layer runs on PSA; applets call it at start-up only to fail early with a
// clear message.
Result<void> init();

// Fills `out` from PSA's DRBG. A failing system RNG leaves no safe way to go on, so this aborts
// with a log line instead of returning weak bytes.
void random_fill(std::span<std::uint8_t> out);
Bytes random_bytes(std::size_t count);

}  // namespace dstack::crypto
