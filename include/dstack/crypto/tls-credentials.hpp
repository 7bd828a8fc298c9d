// For the net layer's TLS code only: certificates and private keys as the objects mbedTLS's TLS
// layer (mbedtls_ssl_*) takes, its random-number callback and its error texts. X.509 and key
// parsing stay in the crypto layer this way; net drives the TLS state machine and nothing else.
// The mbedTLS types are only named here (net includes <mbedtls/ssl.h>, which defines them), so
// this header pulls no mbedTLS header into whoever includes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

struct mbedtls_x509_crt;
struct mbedtls_pk_context;

namespace dstack::crypto {

// A list of parsed certificates (a served chain, leaf first, or a set of trust anchors). mbedTLS
// keeps pointers into it while configurations and connections use it, so it never moves.
class TlsCertificates {
public:
    // Every certificate in `pem` (a system CA bundle too: no size limit beyond the caller's).
    // Errors: "{what}: no PEM certificate found", "{what}: <mbedTLS's text>", and a count of the
    // certificates that did not parse.
    static Result<std::unique_ptr<TlsCertificates>> from_pem(const std::string& pem, std::string_view what);
    ~TlsCertificates();
    TlsCertificates(const TlsCertificates&) = delete;
    TlsCertificates& operator=(const TlsCertificates&) = delete;

    mbedtls_x509_crt* get() const;

private:
    TlsCertificates();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A private key in PEM (PKCS#8, SEC1 or PKCS#1) for signing handshakes.
class TlsPrivateKey {
public:
    // Errors: "private key: empty", "private key: <mbedTLS's text>".
    static Result<std::unique_ptr<TlsPrivateKey>> from_pem(const std::string& pem);
    ~TlsPrivateKey();
    TlsPrivateKey(const TlsPrivateKey&) = delete;
    TlsPrivateKey& operator=(const TlsPrivateKey&) = delete;

    mbedtls_pk_context* get() const;

private:
    TlsPrivateKey();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Whether `key` is the private half of the first certificate's public key.
Result<void> check_key_pair(const TlsCertificates& certificates, const TlsPrivateKey& key);

// The DER of every certificate in an mbedTLS list, in order (the peer's chain that
// mbedtls_ssl_get_peer_cert returns; null gives none).
std::vector<Bytes> certificate_list_der(const mbedtls_x509_crt* first);

// The f_rng that mbedtls_ssl_conf_rng takes: PSA's DRBG, through random_fill (which initialises
// PSA first). `context` is unused.
int tls_random(void* context, unsigned char* out, std::size_t size);

// mbedTLS's text for one of its (negative) error codes.
std::string mbedtls_error_text(int code);
// mbedTLS's text for X.509 verification flags (mbedtls_ssl_get_verify_result), items joined by "; ".
std::string x509_verify_flags_text(std::uint32_t flags);

}  // namespace dstack::crypto
