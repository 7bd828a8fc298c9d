#include "dstack/crypto/x25519.hpp"

#include <sodium.h>

#include "backend.hpp"
#include "dstack/crypto/random.hpp"

namespace dstack::crypto {

X25519KeyPair x25519_generate() {
    X25519KeyPair pair{random_bytes(x25519_key_size), {}};
    auto public_key = x25519_public_key(pair.private_key);
    if (!public_key) detail::fatal(public_key.error());  // only if libsodium failed to initialise
    pair.public_key = std::move(*public_key);
    return pair;
}

Result<Bytes> x25519_public_key(ByteView private_key) {
    DSTACK_CHECK(detail::ensure_sodium());
    if (private_key.size() != x25519_key_size)
        return make_error("X25519 private key must be 32 bytes, got {}", private_key.size());
    Bytes public_key(x25519_key_size);
    if (crypto_scalarmult_base(public_key.data(), private_key.data()) != 0)
        return make_error("X25519 public key computation failed");
    return public_key;
}

Result<Bytes> x25519(ByteView private_key, ByteView peer_public_key) {
    DSTACK_CHECK(detail::ensure_sodium());
    if (private_key.size() != x25519_key_size || peer_public_key.size() != x25519_key_size)
        return make_error("X25519 keys must be 32 bytes (got private {}, public {})", private_key.size(),
                          peer_public_key.size());
    Bytes shared(x25519_key_size);
    if (crypto_scalarmult(shared.data(), private_key.data(), peer_public_key.data()) != 0)
        return make_error("X25519 peer public key is of low order (shared secret would be all zeros)");
    return shared;
}

}  // namespace dstack::crypto
