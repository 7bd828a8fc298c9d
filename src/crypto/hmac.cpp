#include "dstack/crypto/hmac.hpp"

#include "backend.hpp"
#include "dstack/crypto/hash.hpp"

namespace dstack::crypto {

Bytes hmac(HashAlgorithm algorithm, ByteView key, ByteView data) {
    if (auto ready = detail::ensure_psa(); !ready) detail::fatal(ready.error());
    // PSA refuses empty keys; HMAC pads keys with zeros to the block size, so one zero byte is the
    // same key as none (RFC 2104 §2).
    static const std::uint8_t zero = 0;
    if (key.empty()) key = ByteView(&zero, 1);
    // Keys longer than the hash's block size are hashed first (RFC 2104 §2): same result, and
    // PSA refuses very long keys, which callers may pass (an HKDF salt comes from outside).
    Bytes hashed_key;
    const std::size_t block_size = algorithm == HashAlgorithm::sha256 ? 64 : 128;
    if (key.size() > block_size) {
        hashed_key = hash(algorithm, key);
        key = hashed_key;
    }

    const psa_algorithm_t alg = PSA_ALG_HMAC(detail::psa_hash_algorithm(algorithm));
    psa_key_attributes_t attributes = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_type(&attributes, PSA_KEY_TYPE_HMAC);
    psa_set_key_usage_flags(&attributes, PSA_KEY_USAGE_SIGN_MESSAGE);
    psa_set_key_algorithm(&attributes, alg);
    detail::ScopedPsaKey handle;
    psa_status_t status = psa_import_key(&attributes, key.data(), key.size(), handle.out());
    if (status != PSA_SUCCESS) detail::fatal(detail::psa_error("importing HMAC key", status));

    Bytes out(digest_size(algorithm));
    std::size_t length = 0;
    status = psa_mac_compute(handle.get(), alg, data.data(), data.size(), out.data(), out.size(), &length);
    if (status != PSA_SUCCESS) detail::fatal(detail::psa_error("computing HMAC", status));
    return out;
}

Bytes hmac_sha256(ByteView key, ByteView data) { return hmac(HashAlgorithm::sha256, key, data); }
Bytes hmac_sha384(ByteView key, ByteView data) { return hmac(HashAlgorithm::sha384, key, data); }
Bytes hmac_sha512(ByteView key, ByteView data) { return hmac(HashAlgorithm::sha512, key, data); }

}  // namespace dstack::crypto
