#include "dstack/crypto/secp256k1.hpp"

#include <mutex>

#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include "dstack/base/log.hpp"
#include "dstack/crypto/random.hpp"

namespace dstack::crypto {
namespace {

// A randomized context for signing (blinding against side channels); verification and recovery
// use the static context. libsecp256k1 contexts are safe to share across threads once set up, so
// the process creates one, on first use, and keeps it.
const secp256k1_context* signing_context() {
    static std::once_flag once;
    static secp256k1_context* context = nullptr;
    std::call_once(once, [] {
        context = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
        Bytes seed = random_bytes(32);
        // Randomization only adds blinding; an unrandomized context still signs correctly.
        if (!secp256k1_context_randomize(context, seed.data())) log::warn("secp256k1 context blinding failed");
        wipe(seed);
    });
    return context;
}

Result<secp256k1_pubkey> parse_public_key(ByteView public_key) {
    secp256k1_pubkey parsed;
    if ((public_key.size() != 33 && public_key.size() != 65) ||
        !secp256k1_ec_pubkey_parse(secp256k1_context_static, &parsed, public_key.data(), public_key.size()))
        return make_error("invalid secp256k1 public key ({} bytes)", public_key.size());
    return parsed;
}

Bytes serialize(const secp256k1_pubkey& key, bool compressed) {
    Bytes out(compressed ? 33 : 65);
    std::size_t length = out.size();
    secp256k1_ec_pubkey_serialize(secp256k1_context_static, out.data(), &length, &key,
                                  compressed ? SECP256K1_EC_COMPRESSED : SECP256K1_EC_UNCOMPRESSED);
    return out;
}

}  // namespace

Result<Secp256k1PrivateKey> Secp256k1PrivateKey::generate() {
    for (;;) {
        Bytes candidate = random_bytes(secp256k1_scalar_size);
        if (secp256k1_ec_seckey_verify(secp256k1_context_static, candidate.data()))
            return Secp256k1PrivateKey(std::move(candidate));
    }
}

Result<Secp256k1PrivateKey> Secp256k1PrivateKey::from_scalar(ByteView scalar) {
    if (scalar.size() != secp256k1_scalar_size)
        return make_error("secp256k1 private scalar must be 32 bytes, got {}", scalar.size());
    if (!secp256k1_ec_seckey_verify(secp256k1_context_static, scalar.data()))
        return make_error("secp256k1 private scalar is 0 or not below the group order");
    return Secp256k1PrivateKey(Bytes(scalar.begin(), scalar.end()));
}

Secp256k1PrivateKey::~Secp256k1PrivateKey() { wipe(scalar_); }

namespace {

// The scalar was range-checked at construction, so this cannot fail.
secp256k1_pubkey public_point(const Bytes& scalar) {
    secp256k1_pubkey key{};
    if (!secp256k1_ec_pubkey_create(signing_context(), &key, scalar.data())) key = {};
    return key;
}

}  // namespace

Bytes Secp256k1PrivateKey::public_key_compressed() const { return serialize(public_point(scalar_), true); }
Bytes Secp256k1PrivateKey::public_key_uncompressed() const { return serialize(public_point(scalar_), false); }

Result<Bytes> Secp256k1PrivateKey::sign_recoverable(ByteView prehash) const {
    if (prehash.size() != 32) return make_error("secp256k1 prehash must be 32 bytes, got {}", prehash.size());
    secp256k1_ecdsa_recoverable_signature signature;
    // A null nonce function selects RFC 6979 with HMAC-SHA256; the result always has a low s.
    if (!secp256k1_ecdsa_sign_recoverable(signing_context(), &signature, prehash.data(), scalar_.data(), nullptr,
                                          nullptr))
        return make_error("secp256k1 signing failed");
    Bytes out(secp256k1_recoverable_signature_size);
    int recovery_id = 0;
    secp256k1_ecdsa_recoverable_signature_serialize_compact(secp256k1_context_static, out.data(), &recovery_id,
                                                            &signature);
    out[64] = static_cast<std::uint8_t>(recovery_id);
    return out;
}

Result<Bytes> secp256k1_recover(ByteView signature, ByteView prehash, bool compressed) {
    if (signature.size() != secp256k1_recoverable_signature_size)
        return make_error("recoverable secp256k1 signature must be 65 bytes, got {}", signature.size());
    if (prehash.size() != 32) return make_error("secp256k1 prehash must be 32 bytes, got {}", prehash.size());
    int v = signature[64];
    if (v >= 27 && v <= 30) v -= 27;
    if (v > 3) return make_error("recovery id {} is not 0-3 or 27-30", static_cast<int>(signature[64]));
    secp256k1_ecdsa_recoverable_signature parsed;
    if (!secp256k1_ecdsa_recoverable_signature_parse_compact(secp256k1_context_static, &parsed, signature.data(), v))
        return make_error("malformed secp256k1 signature (r or s out of range)");
    secp256k1_pubkey key;
    if (!secp256k1_ecdsa_recover(secp256k1_context_static, &key, &parsed, prehash.data()))
        return make_error("no public key recovers from this secp256k1 signature");
    return serialize(key, compressed);
}

bool secp256k1_verify(ByteView public_key, ByteView prehash, ByteView signature) {
    if (prehash.size() != 32 || (signature.size() != 64 && signature.size() != 65)) return false;
    auto key = parse_public_key(public_key);
    if (!key) return false;
    secp256k1_ecdsa_signature parsed;
    if (!secp256k1_ecdsa_signature_parse_compact(secp256k1_context_static, &parsed, signature.data())) return false;
    return secp256k1_ecdsa_verify(secp256k1_context_static, &parsed, prehash.data(), &*key) == 1;
}

Result<Bytes> secp256k1_compress_public_key(ByteView public_key) {
    DSTACK_TRY(auto key, parse_public_key(public_key));
    return serialize(key, true);
}

}  // namespace dstack::crypto
