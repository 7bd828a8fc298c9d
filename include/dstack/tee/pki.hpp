// Certificate chains and CRLs checked the way DCAP requires, at an explicit time: the trust anchor
// is pinned, every certificate below it must be covered by a CRL from its issuer (unknown
// revocation status is a failure), and CRLs must be current.
#pragma once

#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/crl.hpp"

namespace dstack::tee {

// CRLs are parsed by the crypto layer; the rules for using them are here.
using crypto::Crl;

// Path validation of `chain` (leaf first, at most 8 certificates; the others may come in any order
// and may include the anchor) up to `trust_anchor`, at `now`:
// - each signature, each validity period (notBefore <= now <= notAfter);
// - basic constraints: issuers must be CAs (and within path length), the leaf must not be one
//   (error text contains "CaUsedAsEndEntity");
// - revocation: every certificate except the anchor needs a CRL in `crls` issued (and signed) by
//   its issuer, current at `now` (thisUpdate <= now <= nextUpdate), that does not list it;
// - the anchor's own serial must not be listed by any CRL the anchor issued.
// Errors name the certificate (subject) and the rule.
// Path building tries at most this many certificates as issuers per verification (Intel's chains
// need two: the intermediate, then the anchor); a chain of look-alike or looping CA certificates
// is refused beyond it ("MaximumPathBuildCallsExceeded"). Paths hold at most 3 intermediates.
inline constexpr std::size_t max_issuer_candidates = 4;

// What one verification cost, for the tests that bound it.
struct ChainWork {
    std::size_t issuer_candidates = 0;        // certificates considered as the issuer of another
    std::size_t signature_verifications = 0;  // certificate and CRL signatures checked
};

Result<void> verify_chain_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                             const std::vector<Crl>& crls, UnixSeconds now, ChainWork* work = nullptr);

// The path rules of verify_chain_at without revocation (signatures, validity, basic constraints):
// whether a chain is worth fetching CRLs and collateral for. Never a substitute for verify_chain_at.
Result<void> verify_chain_path_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                                  UnixSeconds now);

// Only the anchor-not-revoked rule (dcap-qvl checks it first, on its own).
Result<void> check_anchor_not_revoked(const crypto::Certificate& trust_anchor, const std::vector<Crl>& crls, UnixSeconds now);

}  // namespace dstack::tee
