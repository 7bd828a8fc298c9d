// X.509 v2 certificate revocation lists (RFC 5280 §5), parsed by mbedTLS underneath: the issuer,
// the dates, the revoked serial numbers, and the signature checked with a certificate's key.
// Policy (which CRL must cover which certificate, and when) is the caller's: see tee/pki.hpp.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"

namespace dstack::crypto {

// CRLs larger than this are refused before parsing (Intel's PCK CRLs are a few KiB; a CA that
// revoked tens of thousands of certificates still fits).
inline constexpr std::size_t max_crl_size = 1024 * 1024;

// Immutable, cheap to copy.
class Crl {
public:
    // Errors start with "Failed to parse CRL" (dcap-qvl's words). A CRL without nextUpdate is
    // refused: whoever relies on a CRL must know when it goes stale.
    static Result<Crl> from_der(ByteView der);
    // The first "X509 CRL" PEM block (PEM input is limited to crypto::max_encoded_size).
    static Result<Crl> from_pem(std::string_view pem);

    const Bytes& der() const;
    int version() const;  // 1 or 2
    Bytes issuer_der() const;
    std::string issuer_text() const;  // e.g. "C=US, O=Intel Corporation, CN=Intel SGX Root CA"
    UnixSeconds this_update() const;
    UnixSeconds next_update() const;
    // The serials' INTEGER content bytes as encoded in the CRL, in order.
    std::vector<Bytes> revoked_serials() const;
    // Whether a certificate serial (INTEGER content bytes) is listed; serials compare as numbers,
    // so a 00 sign byte on either side does not matter.
    bool lists_serial(ByteView serial) const;
    // The CRL's signature by this certificate's key (ECDSA P-256 with SHA-256), and that the
    // CRL's issuer is the certificate's subject.
    Result<void> verify_issued_by(const Certificate& issuer) const;

    struct Impl;  // opaque: the mbedTLS CRL

private:
    explicit Crl(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

}  // namespace dstack::crypto
