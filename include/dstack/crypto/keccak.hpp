// Keccak with the original Keccak padding (0x01), as Ethereum and dstack's report data use it.
// This is NOT SHA3 (FIPS 202 padding 0x06, see hash.hpp), which is why it is implemented here
// and not taken from mbedTLS.
#pragma once

#include <array>
#include <cstdint>

#include "dstack/base/bytes.hpp"

namespace dstack::crypto {

Bytes keccak256(ByteView data);  // 32 bytes
Bytes keccak384(ByteView data);  // 48 bytes
Bytes keccak512(ByteView data);  // 64 bytes

// The Keccak[c = 2 * digest bits] sponge, incrementally.
class KeccakSponge {
public:
    explicit KeccakSponge(std::size_t digest_size);  // 32, 48 or 64
    KeccakSponge& update(ByteView data);
    Bytes finish();  // the hasher is spent afterwards

private:
    std::size_t digest_size_;
    std::size_t rate_;  // 200 - 2 * digest_size bytes
    std::array<std::uint64_t, 25> state_{};
    std::size_t offset_ = 0;  // bytes absorbed into the current block
};

class Keccak256 {
public:
    Keccak256& update(ByteView data) {
        sponge_.update(data);
        return *this;
    }
    Bytes finish() { return sponge_.finish(); }  // the hasher is spent afterwards

private:
    KeccakSponge sponge_{32};
};

}  // namespace dstack::crypto
