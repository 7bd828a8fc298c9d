// HMAC (RFC 2104) with SHA-2, through PSA Crypto's MAC API.
#pragma once

#include "dstack/base/bytes.hpp"
#include "dstack/crypto/hash.hpp"

namespace dstack::crypto {

Bytes hmac(HashAlgorithm algorithm, ByteView key, ByteView data);
Bytes hmac_sha256(ByteView key, ByteView data);
Bytes hmac_sha384(ByteView key, ByteView data);
Bytes hmac_sha512(ByteView key, ByteView data);

}  // namespace dstack::crypto
