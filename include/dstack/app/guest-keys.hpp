// The keys a dstack guest agent hands to its app (spec/agent.md §2.2, §2.7, §2.8, §3, §6.1-§6.2), all
// derived from the app's root secp256k1 key that the KMS (or the local key provider) gave the CVM.
// Every output is wire-visible and byte-exact with upstream: GetKey's 32 bytes and signature chain,
// Sign's signatures, Tappd DeriveKey's deterministic P-256 key.
#pragma once

#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/p256.hpp"

namespace dstack::app {

// The error text upstream answers for an algorithm it does not know (SDK tests match it).
inline constexpr std::string_view unsupported_algorithm = "Unsupported algorithm";

enum class KeyAlgorithm { secp256k1, ed25519 };
// "", "secp256k1" and "k256" are secp256k1; "ed25519"; anything else (secp256k1_prehashed
// included) is unsupported_algorithm.
Result<KeyAlgorithm> parse_key_algorithm(std::string_view name);

// The app's root key material, as .appkeys.json carries it.
struct AppRootKey {
    Bytes k256_key;        // 32-byte secp256k1 scalar (secret)
    Bytes k256_signature;  // the KMS root key's 65-byte signature over the app key; empty without a KMS
};

struct DerivedAppKey {
    Bytes key;                         // 32 bytes: secp256k1 scalar or Ed25519 seed (secret)
    Bytes public_key;                  // compressed secp256k1 (33) or Ed25519 (32)
    std::vector<Bytes> signature_chain;  // [app key's signature over purpose:pubkey, k256_signature]
};

// GetKey: key = HKDF-SHA256(salt "RATLS", ikm k256_key, info path); chain[0] = recoverable
// secp256k1 signature by k256_key over Keccak-256(purpose ":" lowercase-hex(public key)); chain[1] =
// k256_signature verbatim. The algorithm chooses only the public key (the bytes are the same).
Result<DerivedAppKey> derive_app_key(const AppRootKey& root, std::string_view path, std::string_view purpose,
                                     KeyAlgorithm algorithm);

enum class SignAlgorithm { ed25519, secp256k1, secp256k1_prehashed };
// "ed25519", "secp256k1" or "k256", "secp256k1_prehashed"; anything else is unsupported_algorithm.
Result<SignAlgorithm> parse_sign_algorithm(std::string_view name);

struct AppSignature {
    Bytes signature;                    // Ed25519 (64) or secp256k1 r || s (64), low s
    Bytes public_key;                   // Ed25519 (32) or compressed secp256k1 (33)
    std::vector<Bytes> signature_chain;  // [signature, GetKey chain[0], GetKey chain[1]]
};

// Sign: with GetKey("vms", "signing", base algorithm). secp256k1 signs SHA-256(data) with RFC 6979
// nonces; secp256k1_prehashed signs `data` as the digest (exactly 32 bytes).
Result<AppSignature> sign_with_app_key(const AppRootKey& root, SignAlgorithm algorithm, ByteView data);

// Verify: true or false for a well-formed key and signature; an error when either is malformed.
Result<bool> verify_app_signature(SignAlgorithm algorithm, ByteView data, ByteView signature, ByteView public_key);

// Tappd DeriveKey: the P-256 key HKDF(salt "RATLS", ikm, info path), deterministic per path (ikm =
// k256_key) or fresh (ikm = 32 random bytes, random_seed).
Result<crypto::P256PrivateKey> derive_tls_key(ByteView ikm, std::string_view path);

}  // namespace dstack::app
