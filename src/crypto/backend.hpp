// Internal to the crypto layer: backend initialisation and error wording shared by its files.
#pragma once

#include <string_view>

#include <psa/crypto.h>

#include "dstack/base/result.hpp"
#include "dstack/crypto/hash.hpp"

namespace dstack::crypto::detail {

// Process-wide, one-time initialisation (thread-safe; later calls return the first outcome).
Result<void> ensure_psa();     // the program's only psa_crypto_init
Result<void> ensure_p256_engine();  // the P-256 engine's own set-up (p256-openssl.cpp), run by ensure_psa
Result<void> ensure_sodium();  // sodium_init

Error psa_error(std::string_view what, psa_status_t status);

psa_algorithm_t psa_hash_algorithm(HashAlgorithm algorithm);

// For operations that fail only with a broken build or system (fixed algorithms on memory):
// logs and aborts instead of returning an error no caller could handle.
[[noreturn]] void fatal(const Error& error);
Error mbedtls_error(std::string_view what, int code);

// For mbedTLS functions that take an f_rng callback: draws from PSA's DRBG.
int mbedtls_rng(void* context, unsigned char* out, std::size_t size);

// Owns a volatile PSA key and destroys it on scope exit.
class ScopedPsaKey {
public:
    ScopedPsaKey() = default;
    explicit ScopedPsaKey(psa_key_id_t id) : id_(id) {}
    ScopedPsaKey(const ScopedPsaKey&) = delete;
    ScopedPsaKey& operator=(const ScopedPsaKey&) = delete;
    ~ScopedPsaKey() { if (id_ != 0) psa_destroy_key(id_); }
    psa_key_id_t get() const { return id_; }
    psa_key_id_t* out() { return &id_; }

private:
    psa_key_id_t id_ = 0;
};

}  // namespace dstack::crypto::detail
