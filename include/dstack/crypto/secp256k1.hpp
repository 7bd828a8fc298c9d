// secp256k1 keys and Ethereum-style recoverable ECDSA (libsecp256k1): signatures are
// r(32) || s(32) || v(1) with v in {0, 1} (not 27/28), s low, RFC 6979 nonces (HMAC-SHA256).
#pragma once

#include <string_view>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

inline constexpr std::size_t secp256k1_scalar_size = 32;
inline constexpr std::size_t secp256k1_recoverable_signature_size = 65;

class Secp256k1PrivateKey {
public:
    static Result<Secp256k1PrivateKey> generate();
    // 32-byte big-endian scalar; refuses 0 and values >= n.
    static Result<Secp256k1PrivateKey> from_scalar(ByteView scalar);

    Secp256k1PrivateKey(const Secp256k1PrivateKey&) = default;
    Secp256k1PrivateKey& operator=(const Secp256k1PrivateKey&) = default;
    ~Secp256k1PrivateKey();

    const Bytes& scalar() const { return scalar_; }  // secret
    Bytes public_key_compressed() const;    // 33 bytes, 02/03 || X
    Bytes public_key_uncompressed() const;  // 65 bytes, 04 || X || Y

    // Signs a 32-byte prehash (e.g. a Keccak-256 digest) as is, without hashing it again.
    Result<Bytes> sign_recoverable(ByteView prehash) const;

private:
    explicit Secp256k1PrivateKey(Bytes scalar) : scalar_(std::move(scalar)) {}
    Bytes scalar_;
};

// Recovers the signer of a 65-byte r||s||v signature over a 32-byte prehash.
// v may be 0..3 or 27..30. Returns the compressed (33) or uncompressed (65) public key.
Result<Bytes> secp256k1_recover(ByteView signature, ByteView prehash, bool compressed = true);

// Verifies a 64-byte r||s (or 65-byte r||s||v, v ignored) signature with low s against a 33- or
// 65-byte public key. High-s signatures are refused, as Ethereum and libsecp256k1 do.
bool secp256k1_verify(ByteView public_key, ByteView prehash, ByteView signature);

// Converts a 33- or 65-byte public key to the compressed form.
Result<Bytes> secp256k1_compress_public_key(ByteView public_key);

}  // namespace dstack::crypto
