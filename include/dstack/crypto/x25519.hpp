// X25519 Diffie-Hellman (RFC 7748) via libsodium. Private keys are 32 raw bytes and are used
// unclamped as given (X25519 clamps internally), as upstream's env_crypt_key is.
#pragma once

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

inline constexpr std::size_t x25519_key_size = 32;

struct X25519KeyPair {
    Bytes private_key;  // secret
    Bytes public_key;
};

X25519KeyPair x25519_generate();
Result<Bytes> x25519_public_key(ByteView private_key);
// The shared secret X25519(private_key, peer_public_key). Fails when the result is all zeros
// (a low-order peer key), which upstream's decryption also refuses.
Result<Bytes> x25519(ByteView private_key, ByteView peer_public_key);

}  // namespace dstack::crypto
