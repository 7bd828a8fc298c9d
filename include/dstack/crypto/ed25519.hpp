// Ed25519 signatures (RFC 8032) via libsodium. Keys are identified by their 32-byte seed.
#pragma once

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

class Ed25519PrivateKey {
public:
    static Result<Ed25519PrivateKey> generate();
    static Result<Ed25519PrivateKey> from_seed(ByteView seed);  // 32 bytes

    Ed25519PrivateKey(const Ed25519PrivateKey&) = default;
    Ed25519PrivateKey& operator=(const Ed25519PrivateKey&) = default;
    ~Ed25519PrivateKey();

    Bytes seed() const;                               // secret, 32 bytes
    const Bytes& public_key() const { return public_key_; }  // 32 bytes
    Bytes sign(ByteView message) const;               // 64 bytes

private:
    Ed25519PrivateKey() = default;
    Bytes secret_key_;  // libsodium's 64-byte form: seed || public key
    Bytes public_key_;
};

bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature);

}  // namespace dstack::crypto
