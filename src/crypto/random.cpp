#include "dstack/crypto/random.hpp"

#include <cstdlib>
#include <mutex>

#include <mbedtls/error.h>
#include <sodium.h>

#include "backend.hpp"
#include "dstack/base/log.hpp"

namespace dstack::crypto {
namespace detail {

// The program's only psa_crypto_init. PSA Crypto's key store and DRBG are process-wide state of
// mbedTLS, so they are set up once for the process (mbedTLS's TLS layer relies on it too: net's
// TLS configuration calls crypto::init), and the outcome is kept for every later caller.
Result<void> ensure_psa() {
    static std::once_flag once;
    static psa_status_t status = PSA_ERROR_BAD_STATE;
    std::call_once(once, [] {
        // The P-256 engine is ready before PSA (and through it mbedTLS) can call it.
        status = ensure_p256_engine() ? psa_crypto_init() : PSA_ERROR_HARDWARE_FAILURE;
    });
    if (status != PSA_SUCCESS) return psa_error("initialising PSA Crypto", status);
    return {};
}

psa_algorithm_t psa_hash_algorithm(HashAlgorithm algorithm) {
    switch (algorithm) {
        case HashAlgorithm::sha256: return PSA_ALG_SHA_256;
        case HashAlgorithm::sha384: return PSA_ALG_SHA_384;
        case HashAlgorithm::sha512: return PSA_ALG_SHA_512;
    }
    return PSA_ALG_SHA_256;
}

void fatal(const Error& error) {
    log::error("fatal: {}", error.message);
    std::abort();
}

// libsodium's initialisation (its RNG and CPU feature detection) is process-wide as well: once.
Result<void> ensure_sodium() {
    static std::once_flag once;
    static int rc = -1;
    std::call_once(once, [] { rc = sodium_init(); });
    if (rc < 0) return make_error("initialising libsodium failed");
    return {};
}

Error psa_error(std::string_view what, psa_status_t status) {
    std::string_view name;
    switch (status) {
        case PSA_ERROR_INVALID_ARGUMENT: name = "invalid argument"; break;
        case PSA_ERROR_INVALID_SIGNATURE: name = "invalid signature"; break;
        case PSA_ERROR_NOT_SUPPORTED: name = "not supported"; break;
        case PSA_ERROR_NOT_PERMITTED: name = "not permitted"; break;
        case PSA_ERROR_BUFFER_TOO_SMALL: name = "buffer too small"; break;
        case PSA_ERROR_INSUFFICIENT_MEMORY: name = "out of memory"; break;
        case PSA_ERROR_INSUFFICIENT_ENTROPY: name = "insufficient entropy"; break;
        case PSA_ERROR_BAD_STATE: name = "bad state"; break;
        default: name = "error"; break;
    }
    return make_error("{}: PSA {} ({})", what, name, static_cast<int>(status));
}

Error mbedtls_error(std::string_view what, int code) {
    char text[160];
    mbedtls_strerror(code, text, sizeof text);
    return make_error("{}: {} (-0x{:04x})", what, text, static_cast<unsigned>(-code));
}

int mbedtls_rng(void*, unsigned char* out, std::size_t size) {
    random_fill({out, size});
    return 0;
}

}  // namespace detail

Result<void> init() {
    DSTACK_CHECK(detail::ensure_psa());
    DSTACK_CHECK(detail::ensure_sodium());
    return {};
}

void random_fill(std::span<std::uint8_t> out) {
    auto ready = detail::ensure_psa();
    psa_status_t status = ready ? psa_generate_random(out.data(), out.size()) : PSA_ERROR_BAD_STATE;
    if (status != PSA_SUCCESS) detail::fatal(detail::psa_error("secure random generator", status));
}

Bytes random_bytes(std::size_t count) {
    Bytes out(count);
    random_fill(out);
    return out;
}

}  // namespace dstack::crypto
