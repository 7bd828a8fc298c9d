#include "dstack/crypto/tls-credentials.hpp"

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "backend.hpp"

namespace dstack::crypto {

struct TlsCertificates::Impl {
    mbedtls_x509_crt chain;
    Impl() { mbedtls_x509_crt_init(&chain); }
    ~Impl() { mbedtls_x509_crt_free(&chain); }
};

struct TlsPrivateKey::Impl {
    mbedtls_pk_context key;
    psa_key_id_t psa_key = 0;  // an EC key's PSA handle, behind `key` (opaque)
    Impl() { mbedtls_pk_init(&key); }
    ~Impl() {
        mbedtls_pk_free(&key);
        if (psa_key != 0) psa_destroy_key(psa_key);
    }
};

namespace {

// An EC key moves into PSA with a randomized-ECDSA policy, and mbedTLS's TLS code signs through
// that handle: the handshake signature is then the P-256 engine's (mbedTLS would otherwise import
// the key afresh for every handshake and sign deterministically on its own code). RSA stays as is.
Result<void> move_ec_key_into_psa(mbedtls_pk_context& key, psa_key_id_t& psa_key) {
    if (mbedtls_pk_get_type(&key) != MBEDTLS_PK_ECKEY) return {};
    psa_key_attributes_t attributes = PSA_KEY_ATTRIBUTES_INIT;
    int ret = mbedtls_pk_get_psa_attributes(&key, PSA_KEY_USAGE_SIGN_HASH, &attributes);
    if (ret != 0) return make_error("private key: {}", mbedtls_error_text(ret));
    psa_set_key_algorithm(&attributes, PSA_ALG_ECDSA(PSA_ALG_ANY_HASH));
    ret = mbedtls_pk_import_into_psa(&key, &attributes, &psa_key);
    if (ret != 0) return make_error("private key: {}", mbedtls_error_text(ret));
    mbedtls_pk_free(&key);
    mbedtls_pk_init(&key);
    ret = mbedtls_pk_setup_opaque(&key, psa_key);
    if (ret != 0) return make_error("private key: {}", mbedtls_error_text(ret));
    return {};
}

}  // namespace

TlsCertificates::TlsCertificates() : impl_(std::make_unique<Impl>()) {}
TlsCertificates::~TlsCertificates() = default;
mbedtls_x509_crt* TlsCertificates::get() const { return &impl_->chain; }

Result<std::unique_ptr<TlsCertificates>> TlsCertificates::from_pem(const std::string& pem, std::string_view what) {
    DSTACK_CHECK(detail::ensure_psa());
    if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
        return make_error("{}: no PEM certificate found", what);
    std::unique_ptr<TlsCertificates> certificates(new TlsCertificates());
    // The PEM parser wants the terminating NUL counted in the length.
    int ret = mbedtls_x509_crt_parse(certificates->get(), reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1);
    if (ret < 0) return make_error("{}: {}", what, mbedtls_error_text(ret));
    if (ret > 0) return make_error("{}: {} certificate(s) could not be parsed", what, ret);
    return certificates;
}

TlsPrivateKey::TlsPrivateKey() : impl_(std::make_unique<Impl>()) {}
TlsPrivateKey::~TlsPrivateKey() = default;
mbedtls_pk_context* TlsPrivateKey::get() const { return &impl_->key; }

Result<std::unique_ptr<TlsPrivateKey>> TlsPrivateKey::from_pem(const std::string& pem) {
    DSTACK_CHECK(detail::ensure_psa());
    if (pem.empty()) return make_error("private key: empty");
    std::unique_ptr<TlsPrivateKey> key(new TlsPrivateKey());
    int ret = mbedtls_pk_parse_key(key->get(), reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1, nullptr,
                                   0, detail::mbedtls_rng, nullptr);
    if (ret != 0) return make_error("private key: {}", mbedtls_error_text(ret));
    DSTACK_CHECK(move_ec_key_into_psa(key->impl_->key, key->impl_->psa_key));
    return key;
}

Result<void> check_key_pair(const TlsCertificates& certificates, const TlsPrivateKey& key) {
    const mbedtls_pk_context* certified = &certificates.get()->pk;
    // mbedTLS 3.6 compares an opaque EC key with whatever the certificate holds as if it were an
    // EC key: an RSA certificate there is read as the wrong structure (it crashed). Types first.
    if (mbedtls_pk_get_type(key.get()) == MBEDTLS_PK_OPAQUE && mbedtls_pk_get_type(certified) != MBEDTLS_PK_ECKEY)
        return make_error("private key does not belong to the first certificate of the chain");
    if (mbedtls_pk_check_pair(certified, key.get(), detail::mbedtls_rng, nullptr) != 0)
        return make_error("private key does not belong to the first certificate of the chain");
    return {};
}

std::vector<Bytes> certificate_list_der(const mbedtls_x509_crt* first) {
    std::vector<Bytes> der;
    for (const mbedtls_x509_crt* crt = first; crt != nullptr && crt->raw.p != nullptr; crt = crt->next)
        der.emplace_back(crt->raw.p, crt->raw.p + crt->raw.len);
    return der;
}

int tls_random(void* context, unsigned char* out, std::size_t size) { return detail::mbedtls_rng(context, out, size); }

std::string mbedtls_error_text(int code) {
    char text[256] = {};
    mbedtls_strerror(code, text, sizeof text);
    return text;
}

std::string x509_verify_flags_text(std::uint32_t flags) {
    char text[1024] = {};
    mbedtls_x509_crt_verify_info(text, sizeof text, "", flags);
    std::string joined;
    for (std::string_view rest = text; !rest.empty();) {
        auto end = rest.find('\n');
        auto line = rest.substr(0, end);
        if (!line.empty()) joined += (joined.empty() ? "" : "; ") + std::string(line);
        if (end == std::string_view::npos) break;
        rest.remove_prefix(end + 1);
    }
    return joined;
}

}  // namespace dstack::crypto
