#include "dstack/crypto/ed25519.hpp"

#include <sodium.h>

#include "backend.hpp"
#include "dstack/crypto/random.hpp"

namespace dstack::crypto {

Result<Ed25519PrivateKey> Ed25519PrivateKey::generate() {
    Bytes seed = random_bytes(crypto_sign_SEEDBYTES);
    auto key = from_seed(seed);
    wipe(seed);
    return key;
}

Result<Ed25519PrivateKey> Ed25519PrivateKey::from_seed(ByteView seed) {
    DSTACK_CHECK(detail::ensure_sodium());
    if (seed.size() != crypto_sign_SEEDBYTES)
        return make_error("Ed25519 seed must be {} bytes, got {}", crypto_sign_SEEDBYTES, seed.size());
    Ed25519PrivateKey key;
    key.secret_key_.resize(crypto_sign_SECRETKEYBYTES);
    key.public_key_.resize(crypto_sign_PUBLICKEYBYTES);
    if (crypto_sign_seed_keypair(key.public_key_.data(), key.secret_key_.data(), seed.data()) != 0)
        return make_error("Ed25519 key generation failed");
    return key;
}

Ed25519PrivateKey::~Ed25519PrivateKey() { wipe(secret_key_); }

Bytes Ed25519PrivateKey::seed() const {
    return Bytes(secret_key_.begin(), secret_key_.begin() + crypto_sign_SEEDBYTES);
}

Bytes Ed25519PrivateKey::sign(ByteView message) const {
    Bytes signature(crypto_sign_BYTES);
    crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(), secret_key_.data());
    return signature;
}

bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature) {
    if (!detail::ensure_sodium() || public_key.size() != crypto_sign_PUBLICKEYBYTES ||
        signature.size() != crypto_sign_BYTES)
        return false;
    return crypto_sign_verify_detached(signature.data(), message.data(), message.size(), public_key.data()) == 0;
}

}  // namespace dstack::crypto
