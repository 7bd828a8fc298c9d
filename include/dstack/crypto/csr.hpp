// PKCS#10 certificate signing requests with P-256 keys: writing, and parsing with the
// self-signature checked.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/x509-name.hpp"

namespace dstack::crypto {

struct CsrSpec {
    DistinguishedName subject;                   // not empty: mbedTLS cannot parse such CSRs
    std::vector<std::string> subject_alt_names;  // IP literals become iPAddress, others dNSName
    std::vector<X509Extension> extensions;       // requested in the extensionRequest attribute
};

Result<Bytes> write_csr(const CsrSpec& spec, const P256PrivateKey& key);  // DER
std::string csr_pem(ByteView der);                                       // "CERTIFICATE REQUEST"

struct CertificateRequest {
    DistinguishedName subject;
    std::string subject_text;
    Bytes spki_der;
    Bytes public_key;  // 65-byte P-256 point
    std::vector<std::string> subject_alt_names;
};

// Accepts only P-256 keys with ECDSA-SHA256 signatures; the self-signature must verify.
Result<CertificateRequest> parse_csr(ByteView der);
Result<CertificateRequest> parse_csr_pem(std::string_view pem);

}  // namespace dstack::crypto
