// P-256 private key encodings: the exact PKCS#8 bytes upstream writes, and parsing of PKCS#8/SEC1.
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>

#include "backend.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/pem.hpp"

namespace dstack::crypto {
namespace {

// PrivateKeyInfo { version 0, AlgorithmIdentifier { id-ecPublicKey, prime256v1 },
//   OCTET STRING { ECPrivateKey { version 1, privateKey OCTET STRING (32), [1] BIT STRING (65) } } }
constexpr std::uint8_t pkcs8_head[] = {
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01,
    0x04, 0x20,
};
constexpr std::uint8_t pkcs8_public_key_head[] = {0xa1, 0x44, 0x03, 0x42, 0x00};

struct PkContext {
    mbedtls_pk_context pk;
    PkContext() { mbedtls_pk_init(&pk); }
    ~PkContext() { mbedtls_pk_free(&pk); }
};

}  // namespace

Bytes P256PrivateKey::pkcs8_der() const {
    Bytes secret = scalar();
    Bytes der = concat({ByteView(pkcs8_head), secret, ByteView(pkcs8_public_key_head), public_key()});
    wipe(secret);
    return der;
}

std::string P256PrivateKey::pkcs8_pem() const {
    Bytes der = pkcs8_der();
    std::string pem = pem_encode("PRIVATE KEY", der);
    wipe(der);
    return pem;
}

Result<P256PrivateKey> P256PrivateKey::from_der(ByteView der) {
    DSTACK_CHECK(detail::ensure_psa());
    if (der.size() > max_encoded_size)
        return make_error("private key DER of {} bytes exceeds the {}-byte limit", der.size(), max_encoded_size);
    PkContext context;
    int rc = mbedtls_pk_parse_key(&context.pk, der.data(), der.size(), nullptr, 0, detail::mbedtls_rng, nullptr);
    if (rc != 0) return detail::mbedtls_error("parsing private key (expected PKCS#8 or SEC1 EC key)", rc);
    if (mbedtls_pk_get_type(&context.pk) != MBEDTLS_PK_ECKEY)
        return make_error("private key is not an EC key (type {})", mbedtls_pk_get_name(&context.pk));
    const mbedtls_ecp_keypair* pair = mbedtls_pk_ec(context.pk);
    if (mbedtls_ecp_keypair_get_group_id(pair) != MBEDTLS_ECP_DP_SECP256R1)
        return make_error("EC private key is not on the P-256 curve");

    Bytes secret(p256_scalar_size);
    std::size_t length = 0;
    rc = mbedtls_ecp_write_key_ext(pair, &length, secret.data(), secret.size());
    if (rc != 0 || length != p256_scalar_size) return detail::mbedtls_error("reading EC private scalar", rc);
    auto key = from_scalar(secret);
    wipe(secret);
    if (!key) return key;

    // mbedTLS keeps the encoded public key as found (or derives it when absent): it must be ours.
    Bytes embedded(p256_public_key_size);
    rc = mbedtls_ecp_write_public_key(pair, MBEDTLS_ECP_PF_UNCOMPRESSED, &length, embedded.data(), embedded.size());
    if (rc == 0 && embedded != key->public_key())
        return make_error("the public key inside the private key file does not match its private scalar");
    return key;
}

Result<P256PrivateKey> P256PrivateKey::from_pem(std::string_view pem) {
    DSTACK_TRY(auto blocks, pem_decode_all(pem));
    for (auto& block : blocks) {
        if (block.label != "PRIVATE KEY" && block.label != "EC PRIVATE KEY") continue;
        auto key = from_der(block.der);
        wipe(block.der);
        return key;
    }
    return make_error("no \"PRIVATE KEY\" or \"EC PRIVATE KEY\" PEM block found");
}

}  // namespace dstack::crypto
