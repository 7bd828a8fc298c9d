// Keccak-256 with the original Keccak padding (0x01), as Ethereum uses it. This is NOT
// SHA3-256 (FIPS 202 padding 0x06), which is why it is implemented here and not taken from mbedTLS.
#pragma once

#include <array>
#include <cstdint>

#include "dstack/base/bytes.hpp"

namespace dstack::crypto {

Bytes keccak256(ByteView data);

class Keccak256 {
public:
    Keccak256& update(ByteView data);
    Bytes finish();  // the hasher is spent afterwards

private:
    static constexpr std::size_t rate = 136;  // 1600 - 2*256 bits
    std::array<std::uint64_t, 25> state_{};
    std::size_t offset_ = 0;  // bytes absorbed into the current block
};

}  // namespace dstack::crypto
