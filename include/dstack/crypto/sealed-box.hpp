// libsodium sealed boxes (crypto_box_seal): anonymous public-key encryption to an X25519 key.
// Layout: ephemeral public key (32) || XSalsa20-Poly1305 box (16-byte tag first).
#pragma once

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

inline constexpr std::size_t sealed_box_overhead = 48;

Result<Bytes> sealed_box_seal(ByteView message, ByteView recipient_public_key);
Result<Bytes> sealed_box_open(ByteView sealed, ByteView recipient_public_key, ByteView recipient_private_key);

}  // namespace dstack::crypto
