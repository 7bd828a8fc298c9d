// SHA-2 digests (through PSA Crypto), one-shot and incremental, and one-shot SHA-3 (FIPS 202).
#pragma once

#include <cstddef>
#include <memory>

#include "dstack/base/bytes.hpp"

namespace dstack::crypto {

enum class HashAlgorithm { sha256, sha384, sha512 };

std::size_t digest_size(HashAlgorithm algorithm);  // 32, 48, 64

Bytes hash(HashAlgorithm algorithm, ByteView data);
Bytes sha256(ByteView data);
Bytes sha384(ByteView data);
Bytes sha512(ByteView data);

// FIPS 202 SHA3 (padding 0x06); for the original Keccak padding see keccak.hpp.
Bytes sha3_256(ByteView data);
Bytes sha3_384(ByteView data);
Bytes sha3_512(ByteView data);

// Incremental hashing: update() any number of times, then finish() once.
class Hasher {
public:
    explicit Hasher(HashAlgorithm algorithm);
    Hasher(Hasher&&) noexcept;
    Hasher& operator=(Hasher&&) noexcept;
    ~Hasher();

    Hasher& update(ByteView data);
    Bytes finish();  // the hasher is spent afterwards

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace dstack::crypto
