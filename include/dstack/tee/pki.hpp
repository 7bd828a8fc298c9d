// Certificate chains and CRLs checked the way DCAP requires, at an explicit time: the trust anchor
// is pinned, every certificate below it must be covered by a CRL from its issuer (unknown
// revocation status is a failure), and CRLs must be current.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"

namespace dstack::tee {

// Immutable, cheap to copy.
class Crl {
public:
    static Result<Crl> from_der(ByteView der);  // "Failed to parse CRL: ..."

    const Bytes& der() const;
    Bytes issuer_der() const;
    UnixSeconds this_update() const;
    UnixSeconds next_update() const;
    bool lists_serial(ByteView serial) const;  // the certificate serial's content bytes
    // The CRL's signature by this certificate's key, and that the names match.
    Result<void> verify_issued_by(const crypto::Certificate& issuer) const;

    struct Impl;

private:
    explicit Crl(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

// Path validation of `chain` (leaf first; the other certificates may come in any order and may
// include the anchor) up to `trust_anchor`, at `now`:
// - each signature, each validity period (notBefore <= now <= notAfter);
// - basic constraints: issuers must be CAs (and within path length), the leaf must not be one
//   (error text contains "CaUsedAsEndEntity");
// - revocation: every certificate except the anchor needs a CRL in `crls` issued (and signed) by
//   its issuer, current at `now` (thisUpdate <= now <= nextUpdate), that does not list it;
// - the anchor's own serial must not be listed by any CRL the anchor issued.
// Errors name the certificate (subject) and the rule.
Result<void> verify_chain_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                             const std::vector<Crl>& crls, UnixSeconds now);

// The path rules of verify_chain_at without revocation (signatures, validity, basic constraints):
// whether a chain is worth fetching CRLs and collateral for. Never a substitute for verify_chain_at.
Result<void> verify_chain_path_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                                  UnixSeconds now);

// Only the anchor-not-revoked rule (dcap-qvl checks it first, on its own).
Result<void> check_anchor_not_revoked(const crypto::Certificate& trust_anchor, const std::vector<Crl>& crls, UnixSeconds now);

}  // namespace dstack::tee
