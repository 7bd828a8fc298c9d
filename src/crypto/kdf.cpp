#include "dstack/crypto/kdf.hpp"

#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/hkdf.hpp"

namespace dstack::crypto {

Result<Bytes> derive_key(ByteView ikm, const std::vector<ByteView>& parts, std::size_t length) {
    Bytes info;
    for (auto part : parts) info.insert(info.end(), part.begin(), part.end());
    return hkdf_sha256(as_bytes("RATLS"), ikm, info, length);
}

Result<P256PrivateKey> derive_p256_key_from_scalar(ByteView root_scalar, const std::vector<ByteView>& parts) {
    DSTACK_TRY(auto scalar, derive_key(root_scalar, parts, p256_scalar_size));
    auto key = P256PrivateKey::from_scalar(scalar);
    wipe(scalar);
    if (!key) return std::move(key).take_error().context("derived P-256 key");
    return key;
}

Result<P256PrivateKey> derive_p256_key(const P256PrivateKey& root, const std::vector<ByteView>& parts) {
    Bytes root_scalar = root.scalar();
    auto key = derive_p256_key_from_scalar(root_scalar, parts);
    wipe(root_scalar);
    return key;
}

Result<Bytes> derive_dh_secret(const P256PrivateKey& root, const std::vector<ByteView>& parts) {
    DSTACK_TRY(auto key, derive_p256_key(root, parts));
    Bytes der = key.pkcs8_der();
    Bytes secret = sha256(der);
    wipe(der);
    return secret;
}

}  // namespace dstack::crypto
