#include "dstack/crypto/p256.hpp"

// mbedTLS 3.6 declares these helpers without C linkage for C++.
extern "C" {
#include <mbedtls/psa_util.h>
}

#include "backend.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/asn1.hpp"

namespace dstack::crypto {
namespace {

using detail::psa_error;
using detail::ScopedPsaKey;

constexpr psa_key_type_t key_pair_type = PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1);
constexpr psa_key_type_t public_key_type = PSA_KEY_TYPE_ECC_PUBLIC_KEY(PSA_ECC_FAMILY_SECP_R1);
constexpr psa_algorithm_t ecdsa_sha256 = PSA_ALG_ECDSA(PSA_ALG_SHA_256);

// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) ... }
constexpr std::uint8_t spki_prefix[] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
    0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
};

psa_key_attributes_t key_pair_attributes() {
    psa_key_attributes_t attributes = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_type(&attributes, key_pair_type);
    psa_set_key_bits(&attributes, 256);
    psa_set_key_usage_flags(&attributes, PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_SIGN_MESSAGE |
                                             PSA_KEY_USAGE_EXPORT | PSA_KEY_USAGE_DERIVE);
    psa_set_key_algorithm(&attributes, PSA_ALG_ECDSA(PSA_ALG_ANY_HASH));
    psa_set_key_enrollment_algorithm(&attributes, PSA_ALG_ECDH);
    return attributes;
}

Result<void> check_public_key_shape(ByteView public_key) {
    if (public_key.size() != p256_public_key_size || public_key[0] != 0x04)
        return make_error("P-256 public key must be 65 bytes starting with 04 (uncompressed), got {} bytes",
                          public_key.size());
    return {};
}

Result<Bytes> raw_to_der(ByteView raw) {
    if (raw.size() != p256_signature_size) return make_error("P-256 signature must be 64 bytes, got {}", raw.size());
    Bytes der(80);
    std::size_t length = 0;
    int rc = mbedtls_ecdsa_raw_to_der(256, raw.data(), raw.size(), der.data(), der.size(), &length);
    if (rc != 0) return detail::mbedtls_error("encoding ECDSA signature", rc);
    der.resize(length);
    return der;
}

}  // namespace

struct P256PrivateKey::Impl {
    psa_key_id_t id = 0;
    Bytes public_key;
    ~Impl() { if (id != 0) psa_destroy_key(id); }
};

P256PrivateKey::P256PrivateKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

std::uint32_t detail::psa_key_id(const P256PrivateKey& key) { return key.impl_->id; }

namespace {

Result<std::shared_ptr<P256PrivateKey::Impl>> finish_key(psa_key_id_t id) {
    auto impl = std::make_shared<P256PrivateKey::Impl>();
    impl->id = id;
    impl->public_key.resize(p256_public_key_size);
    std::size_t length = 0;
    psa_status_t status = psa_export_public_key(id, impl->public_key.data(), impl->public_key.size(), &length);
    if (status != PSA_SUCCESS || length != p256_public_key_size) return psa_error("exporting P-256 public key", status);
    return impl;
}

}  // namespace

Result<P256PrivateKey> P256PrivateKey::generate() {
    DSTACK_CHECK(detail::ensure_psa());
    auto attributes = key_pair_attributes();
    psa_key_id_t id = 0;
    psa_status_t status = psa_generate_key(&attributes, &id);
    if (status != PSA_SUCCESS) return psa_error("generating P-256 key", status);
    DSTACK_TRY(auto impl, finish_key(id));
    return P256PrivateKey(std::move(impl));
}

Result<P256PrivateKey> P256PrivateKey::from_scalar(ByteView scalar) {
    DSTACK_CHECK(detail::ensure_psa());
    if (scalar.size() != p256_scalar_size)
        return make_error("P-256 private scalar must be 32 bytes, got {}", scalar.size());
    auto attributes = key_pair_attributes();
    psa_key_id_t id = 0;
    psa_status_t status = psa_import_key(&attributes, scalar.data(), scalar.size(), &id);
    if (status == PSA_ERROR_INVALID_ARGUMENT) return make_error("P-256 private scalar is 0 or not below the group order");
    if (status != PSA_SUCCESS) return psa_error("importing P-256 private key", status);
    DSTACK_TRY(auto impl, finish_key(id));
    return P256PrivateKey(std::move(impl));
}

Bytes P256PrivateKey::scalar() const {
    Bytes out(p256_scalar_size);
    std::size_t length = 0;
    // The key was created exportable; a failure means a broken library or memory, and carrying on
    // with a made-up scalar would derive predictable keys: stop instead.
    if (psa_export_key(impl_->id, out.data(), out.size(), &length) != PSA_SUCCESS || length != p256_scalar_size)
        detail::fatal(make_error("exporting a P-256 private key from PSA failed"));
    return out;
}

const Bytes& P256PrivateKey::public_key() const { return impl_->public_key; }

Bytes P256PrivateKey::spki_der() const { return *p256_spki_from_public_key(impl_->public_key); }

Result<Bytes> P256PrivateKey::sign(ByteView message) const {
    Bytes signature(p256_signature_size);
    std::size_t length = 0;
    psa_status_t status = psa_sign_message(impl_->id, ecdsa_sha256, message.data(), message.size(), signature.data(),
                                           signature.size(), &length);
    if (status != PSA_SUCCESS) return psa_error("P-256 signing", status);
    return signature;
}

Result<Bytes> P256PrivateKey::sign_der(ByteView message) const {
    DSTACK_TRY(auto raw, sign(message));
    return raw_to_der(raw);
}

Result<Bytes> P256PrivateKey::sign_digest(ByteView digest) const {
    if (digest.size() != 32) return make_error("P-256 digest to sign must be 32 bytes (SHA-256), got {}", digest.size());
    Bytes signature(p256_signature_size);
    std::size_t length = 0;
    psa_status_t status = psa_sign_hash(impl_->id, ecdsa_sha256, digest.data(), digest.size(), signature.data(),
                                        signature.size(), &length);
    if (status != PSA_SUCCESS) return psa_error("P-256 signing", status);
    return signature;
}

Result<Bytes> P256PrivateKey::ecdh(ByteView peer_public_key) const {
    DSTACK_CHECK(check_public_key_shape(peer_public_key));
    Bytes shared(32);
    std::size_t length = 0;
    psa_status_t status = psa_raw_key_agreement(PSA_ALG_ECDH, impl_->id, peer_public_key.data(),
                                                peer_public_key.size(), shared.data(), shared.size(), &length);
    if (status != PSA_SUCCESS) return psa_error("P-256 ECDH (is the peer key on the curve?)", status);
    return shared;
}

Result<Bytes> p256_public_key_from_spki(ByteView spki_der) {
    if (spki_der.size() != sizeof spki_prefix + p256_public_key_size ||
        !std::equal(std::begin(spki_prefix), std::end(spki_prefix), spki_der.begin()))
        return make_error("not a P-256 SubjectPublicKeyInfo with an uncompressed point ({} bytes)", spki_der.size());
    Bytes public_key(spki_der.begin() + sizeof spki_prefix, spki_der.end());
    DSTACK_CHECK(check_public_key_shape(public_key));
    return public_key;
}

Result<Bytes> p256_spki_from_public_key(ByteView public_key) {
    DSTACK_CHECK(check_public_key_shape(public_key));
    return concat({ByteView(spki_prefix), public_key});
}

bool p256_verify(ByteView public_key, ByteView message, ByteView signature) {
    if (!detail::ensure_psa() || !check_public_key_shape(public_key) || signature.size() != p256_signature_size)
        return false;
    psa_key_attributes_t attributes = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_type(&attributes, public_key_type);
    psa_set_key_usage_flags(&attributes, PSA_KEY_USAGE_VERIFY_MESSAGE | PSA_KEY_USAGE_VERIFY_HASH);
    psa_set_key_algorithm(&attributes, ecdsa_sha256);
    ScopedPsaKey key;
    if (psa_import_key(&attributes, public_key.data(), public_key.size(), key.out()) != PSA_SUCCESS) return false;
    return psa_verify_message(key.get(), ecdsa_sha256, message.data(), message.size(), signature.data(),
                              signature.size()) == PSA_SUCCESS;
}

bool p256_verify_der(ByteView public_key, ByteView message, ByteView signature) {
    auto raw = p256_signature_der_to_raw(signature);
    return raw && p256_verify(public_key, message, *raw);
}

Result<Bytes> p256_signature_raw_to_der(ByteView raw) { return raw_to_der(raw); }

// Strict DER, not the BER that mbedtls_ecdsa_der_to_raw also takes (a length in long form or with
// leading zeros, an INTEGER padded with extra zero octets): one signature has one encoding, so a
// signature cannot be re-encoded into another accepted byte string (Wycheproof's
// BerEncodedSignature and InvalidEncoding cases).
Result<Bytes> p256_signature_der_to_raw(ByteView der) {
    if (der.size() > 80) return make_error("DER ECDSA signature of {} bytes is too long for P-256", der.size());
    auto malformed = [](const Error& error) { return make_error("malformed DER ECDSA signature: {}", error.message); };
    auto body = der::read_single(der, der::tag::sequence);
    if (!body) return malformed(body.error());
    der::Reader reader(*body);
    Bytes raw(p256_signature_size, 0);
    for (std::size_t half = 0; half < 2; ++half) {
        const char* name = half == 0 ? "r" : "s";
        auto integer = reader.read(der::tag::integer);
        if (!integer) return malformed(integer.error());
        ByteView value = *integer;
        // A non-negative INTEGER in its shortest form: 00 only before an octet with its top bit set.
        if (value.empty() || (value[0] & 0x80) != 0)
            return make_error("malformed DER ECDSA signature: {} is empty or negative", name);
        if (value.size() > 1 && value[0] == 0 && (value[1] & 0x80) == 0)
            return make_error("malformed DER ECDSA signature: {} has a superfluous leading zero", name);
        if (value[0] == 0) value = value.subspan(1);
        if (value.size() > p256_scalar_size)
            return make_error("malformed DER ECDSA signature: {} is longer than 32 bytes", name);
        auto end_of_half = raw.begin() + static_cast<std::ptrdiff_t>((half + 1) * p256_scalar_size);
        std::copy(value.begin(), value.end(), end_of_half - static_cast<std::ptrdiff_t>(value.size()));
    }
    if (auto end = reader.expect_end(); !end) return malformed(end.error());
    return raw;
}

}  // namespace dstack::crypto
