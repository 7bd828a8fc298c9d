// dstack's key derivation (upstream ra-tls kdf.rs): HKDF-SHA256 with salt "RATLS" and the context
// parts concatenated without separators or length prefixes. Outputs are wire-visible: never change them.
#pragma once

#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/p256.hpp"

namespace dstack::crypto {

Result<Bytes> derive_key(ByteView ikm, const std::vector<ByteView>& parts, std::size_t length);

// P-256 key whose scalar is derive_key(root scalar, parts, 32) taken big-endian; an out-of-range
// result is an error (upstream does not retry).
Result<P256PrivateKey> derive_p256_key(const P256PrivateKey& root, const std::vector<ByteView>& parts);
Result<P256PrivateKey> derive_p256_key_from_scalar(ByteView root_scalar, const std::vector<ByteView>& parts);

// SHA-256 of the derived key's 138-byte PKCS#8 DER (KMS disk and env keys).
Result<Bytes> derive_dh_secret(const P256PrivateKey& root, const std::vector<ByteView>& parts);

}  // namespace dstack::crypto
