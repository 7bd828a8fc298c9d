#include "dstack/app/guest-keys.hpp"

#include "dstack/base/hex.hpp"
#include "dstack/crypto/ed25519.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/kdf.hpp"
#include "dstack/crypto/keccak.hpp"
#include "dstack/crypto/secp256k1.hpp"

namespace dstack::app {

namespace {

constexpr std::size_t app_key_size = 32;

Result<Bytes> public_key_of(ByteView key, KeyAlgorithm algorithm) {
    if (algorithm == KeyAlgorithm::ed25519) {
        DSTACK_TRY(auto ed, crypto::Ed25519PrivateKey::from_seed(key));
        return ed.public_key();
    }
    DSTACK_TRY(auto k256, crypto::Secp256k1PrivateKey::from_scalar(key));
    return k256.public_key_compressed();
}

Result<Bytes> sign_secp256k1(ByteView key, ByteView digest) {
    DSTACK_TRY(auto k256, crypto::Secp256k1PrivateKey::from_scalar(key));
    DSTACK_TRY(auto signature, k256.sign_recoverable(digest));
    signature.resize(64);  // r || s: Sign carries no recovery id
    return signature;
}

}  // namespace

Result<KeyAlgorithm> parse_key_algorithm(std::string_view name) {
    if (name.empty() || name == "secp256k1" || name == "k256") return KeyAlgorithm::secp256k1;
    if (name == "ed25519") return KeyAlgorithm::ed25519;
    return Error{std::string(unsupported_algorithm)};
}

Result<SignAlgorithm> parse_sign_algorithm(std::string_view name) {
    if (name == "ed25519") return SignAlgorithm::ed25519;
    if (name == "secp256k1" || name == "k256") return SignAlgorithm::secp256k1;
    if (name == "secp256k1_prehashed") return SignAlgorithm::secp256k1_prehashed;
    return Error{std::string(unsupported_algorithm)};
}

Result<DerivedAppKey> derive_app_key(const AppRootKey& root, std::string_view path, std::string_view purpose,
                                     KeyAlgorithm algorithm) {
    if (root.k256_key.size() != app_key_size)
        return make_error("app key: expected {} bytes, got {}", app_key_size, root.k256_key.size());
    DSTACK_TRY(auto root_key, crypto::Secp256k1PrivateKey::from_scalar(root.k256_key));
    DerivedAppKey derived;
    DSTACK_TRY(derived.key, crypto::derive_key(root.k256_key, {as_bytes(path)}, app_key_size));
    auto public_key = public_key_of(derived.key, algorithm);
    if (!public_key) {
        wipe(derived.key);
        return std::move(public_key).take_error().context("derived key");
    }
    derived.public_key = std::move(*public_key);
    std::string message = std::string(purpose) + ":" + hex_encode(derived.public_key);
    DSTACK_TRY(auto signature, root_key.sign_recoverable(crypto::keccak256(as_bytes(message))));
    derived.signature_chain = {std::move(signature), root.k256_signature};
    return derived;
}

Result<AppSignature> sign_with_app_key(const AppRootKey& root, SignAlgorithm algorithm, ByteView data) {
    if (algorithm == SignAlgorithm::secp256k1_prehashed && data.size() != 32)
        return make_error("Pre-hashed signing requires a 32-byte digest, but received {} bytes", data.size());
    auto key_algorithm = algorithm == SignAlgorithm::ed25519 ? KeyAlgorithm::ed25519 : KeyAlgorithm::secp256k1;
    DSTACK_TRY(auto derived, derive_app_key(root, "vms", "signing", key_algorithm));
    AppSignature out;
    Result<Bytes> signature = Bytes{};
    if (algorithm == SignAlgorithm::ed25519) {
        auto ed = crypto::Ed25519PrivateKey::from_seed(derived.key);
        signature = ed ? Result<Bytes>(ed->sign(data)) : Result<Bytes>(std::move(ed).take_error());
    } else if (algorithm == SignAlgorithm::secp256k1) {
        signature = sign_secp256k1(derived.key, crypto::sha256(data));
    } else {
        signature = sign_secp256k1(derived.key, data);
    }
    wipe(derived.key);
    if (!signature) return std::move(signature).take_error();
    out.signature = std::move(*signature);
    out.public_key = std::move(derived.public_key);
    out.signature_chain = {out.signature, std::move(derived.signature_chain[0]), std::move(derived.signature_chain[1])};
    return out;
}

Result<bool> verify_app_signature(SignAlgorithm algorithm, ByteView data, ByteView signature, ByteView public_key) {
    if (algorithm == SignAlgorithm::ed25519) {
        if (public_key.size() != 32) return make_error("invalid public key");
        if (signature.size() != 64) return make_error("invalid signature: expected 64 bytes, got {}", signature.size());
        return crypto::ed25519_verify(public_key, data, signature);
    }
    if (!crypto::secp256k1_compress_public_key(public_key)) return make_error("invalid public key");
    if (signature.size() != 64) return make_error("invalid signature: expected 64 bytes, got {}", signature.size());
    if (algorithm == SignAlgorithm::secp256k1_prehashed) {
        if (data.size() != 32) return make_error("Pre-hashed verification requires a 32-byte digest, but received {} bytes", data.size());
        return crypto::secp256k1_verify(public_key, data, signature);
    }
    return crypto::secp256k1_verify(public_key, crypto::sha256(data), signature);
}

Result<crypto::P256PrivateKey> derive_tls_key(ByteView ikm, std::string_view path) {
    return crypto::derive_p256_key_from_scalar(ikm, {as_bytes(path)});
}

}  // namespace dstack::app
