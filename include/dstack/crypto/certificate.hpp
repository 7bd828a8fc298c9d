// Parsed X.509 certificates (mbedTLS underneath) and chain verification, with the look-ups
// RA-TLS needs: SPKI, names, SANs, extensions by OID, validity.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/x509-name.hpp"

namespace dstack::crypto {

// Immutable, cheap to copy.
class Certificate {
public:
    static Result<Certificate> from_der(ByteView der);
    // The first CERTIFICATE block.
    static Result<Certificate> from_pem(std::string_view pem);
    // Every CERTIFICATE block, in order (leaf first for a served chain).
    static Result<std::vector<Certificate>> chain_from_pem(std::string_view pem);

    const Bytes& der() const;
    std::string pem() const;

    Bytes spki_der() const;                     // SubjectPublicKeyInfo as encoded in the certificate
    Result<Bytes> p256_public_key() const;      // 65 bytes, if the key is P-256
    Bytes serial() const;                       // the INTEGER's content bytes (with any 00 sign byte)
    UnixSeconds not_before() const;
    UnixSeconds not_after() const;
    bool is_ca() const;

    Bytes subject_der() const;
    Bytes issuer_der() const;
    std::string subject_text() const;           // e.g. "O=Dstack, CN=Dstack KMS CA"
    DistinguishedName subject() const;          // first O and first CN
    std::optional<std::string> common_name() const;
    // dNSName entries as they are, iPAddress entries as text ("10.0.0.1", "::1").
    std::vector<std::string> subject_alt_names() const;

    // The extnValue content of the extension with this OID, if present.
    std::optional<Bytes> extension(std::string_view dotted_oid) const;
    // A dstack custom extension's payload (the inner OCTET STRING unwrapped); nullopt when
    // absent, an error when present but not wrapped as dstack writes it.
    Result<std::optional<Bytes>> dstack_extension(std::string_view dotted_oid) const;

    // Checks only that `issuer`'s key signed this certificate (no names, time or usage checks).
    Result<void> verify_signature_by(const Certificate& issuer) const;

    struct Impl;  // opaque: the mbedTLS certificate

private:
    explicit Certificate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

// Full path validation with mbedTLS's default profile at the current time: `chain` is the leaf
// followed by any intermediates, `trusted` the anchors. With a hostname, the leaf's SAN (or CN)
// must match it. The error names every problem mbedTLS found.
Result<void> verify_certificate_chain(const std::vector<Certificate>& chain, const std::vector<Certificate>& trusted,
                                      std::optional<std::string_view> hostname = std::nullopt);

}  // namespace dstack::crypto
