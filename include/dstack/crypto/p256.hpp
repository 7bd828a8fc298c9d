// ECDSA/ECDH keys on NIST P-256 (secp256r1), held by PSA Crypto, and the exact key encodings dstack
// puts on the wire.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

inline constexpr std::size_t p256_scalar_size = 32;
inline constexpr std::size_t p256_public_key_size = 65;  // 04 || X || Y
inline constexpr std::size_t p256_signature_size = 64;   // r || s
inline constexpr std::size_t p256_pkcs8_size = 138;

class P256PrivateKey;
namespace detail {
std::uint32_t psa_key_id(const P256PrivateKey& key);  // the crypto layer's own plumbing (mbedTLS's writers)
}

// Immutable and cheap to copy (copies share one PSA key, destroyed with the last copy).
class P256PrivateKey {
public:
    static Result<P256PrivateKey> generate();
    // A 32-byte big-endian scalar; refuses 0 and values >= n.
    static Result<P256PrivateKey> from_scalar(ByteView scalar);
    // PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"); a public key inside must match.
    static Result<P256PrivateKey> from_der(ByteView der);
    static Result<P256PrivateKey> from_pem(std::string_view pem);

    Bytes scalar() const;                   // secret: 32 bytes big-endian
    const Bytes& public_key() const;        // 65 bytes uncompressed
    Bytes spki_der() const;                 // SubjectPublicKeyInfo, 91 bytes

    // PKCS#8 v1 with an inner SEC1 ECPrivateKey that holds the public key but no parameters:
    // byte-identical to upstream's (RustCrypto p256 / rcgen / ring) 138-byte encoding.
    Bytes pkcs8_der() const;
    std::string pkcs8_pem() const;          // "PRIVATE KEY"

    // ECDSA with SHA-256 over `message`.
    Result<Bytes> sign(ByteView message) const;        // r || s, 64 bytes
    Result<Bytes> sign_der(ByteView message) const;    // ASN.1 Ecdsa-Sig-Value
    // ECDSA over an already computed SHA-256 digest (32 bytes).
    Result<Bytes> sign_digest(ByteView digest) const;  // r || s

    // ECDH: the 32-byte x-coordinate of d * peer (peer as 65-byte uncompressed point).
    Result<Bytes> ecdh(ByteView peer_public_key) const;

    struct Impl;  // opaque: the PSA key

private:
    friend std::uint32_t detail::psa_key_id(const P256PrivateKey& key);
    explicit P256PrivateKey(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
};

// The engine that serves P-256 in this build (meson option p256): "openssl" (OpenSSL's libcrypto
// behind mbedTLS's PSA driver interface) or "mbedtls". Either makes every P-256 signature,
// verification, key and ECDH of the program: these functions, and mbedTLS's X.509 and TLS code. ECDSA signatures are randomized
// (PSA_ALG_ECDSA) everywhere; nothing in dstack needs deterministic P-256 signatures.
std::string_view p256_engine();
// How many P-256 operations the OpenSSL engine has served in this process (always 0 with the
// mbedTLS engine): lets tests show which code answered.
std::uint64_t p256_engine_operations();

// SubjectPublicKeyInfo <-> 65-byte point (only id-ecPublicKey with the prime256v1 curve).
Result<Bytes> p256_public_key_from_spki(ByteView spki_der);
Result<Bytes> p256_spki_from_public_key(ByteView public_key);

// ECDSA-SHA256 verification; false for a bad signature, a malformed key or a malformed signature.
bool p256_verify(ByteView public_key, ByteView message, ByteView signature);      // r || s
bool p256_verify_der(ByteView public_key, ByteView message, ByteView signature);  // DER

Result<Bytes> p256_signature_raw_to_der(ByteView raw);
Result<Bytes> p256_signature_der_to_raw(ByteView der);

}  // namespace dstack::crypto
