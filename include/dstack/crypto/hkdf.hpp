// HKDF-SHA256 (RFC 5869), through PSA Crypto's key derivation API.
#pragma once

#include <cstddef>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

// Extract-then-expand. Fails when length > 255 * 32.
Result<Bytes> hkdf_sha256(ByteView salt, ByteView ikm, ByteView info, std::size_t length);

Bytes hkdf_sha256_extract(ByteView salt, ByteView ikm);  // the 32-byte PRK
Result<Bytes> hkdf_sha256_expand(ByteView prk, ByteView info, std::size_t length);

}  // namespace dstack::crypto
