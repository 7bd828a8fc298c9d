// DCAP's certificate rules at a pinned time: path building up to one pinned anchor, basic
// constraints, and revocation where a missing or stale CRL fails closed (webpki's
// UnknownStatusPolicy::Deny and ExpirationPolicy::Enforce, which dcap-qvl uses). Error texts carry
// webpki's error names (CaUsedAsEndEntity, UnknownIssuer, ...) for parity with dcap-qvl's messages.
#include "dstack/tee/pki.hpp"

#include <algorithm>
#include <optional>

#include "dstack/crypto/asn1.hpp"

namespace dstack::tee {

namespace {

// Intel's chains are three certificates deep; the bound keeps path search trivially small.
constexpr std::size_t max_chain_length = 8;
constexpr std::string_view basic_constraints_oid = "2.5.29.19";

// An anchor is a name and a key (as webpki holds it): another certificate with both is the anchor.
bool is_trust_anchor(const crypto::Certificate& certificate, const crypto::Certificate& anchor) {
    return certificate.subject_der() == anchor.subject_der() && certificate.spki_der() == anchor.spki_der();
}

// pathLenConstraint of BasicConstraints, if any (mbedTLS has already read cA from the extension).
// BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }
Result<std::optional<unsigned>> path_length_limit(const crypto::Certificate& certificate) {
    auto value = certificate.extension(basic_constraints_oid);
    if (!value) return std::optional<unsigned>{};
    auto malformed = [&certificate](Error error) {
        return std::move(error).context(fmt::format("malformed BasicConstraints in {}", certificate.subject_text()));
    };
    auto content = crypto::der::read_single(*value, crypto::der::tag::sequence);
    if (!content) return malformed(std::move(content).take_error());
    crypto::der::Reader fields(*content);
    auto ca = fields.read_optional(crypto::der::tag::boolean);
    if (!ca) return malformed(std::move(ca).take_error());
    if (*ca) {
        if (auto flag = crypto::der::read_boolean(**ca); !flag) return malformed(std::move(flag).take_error());
    }
    if (fields.at_end()) return std::optional<unsigned>{};
    auto limit = fields.read(crypto::der::tag::integer);
    if (!limit) return malformed(std::move(limit).take_error());
    auto number = crypto::der::read_unsigned(*limit);
    if (!number) return malformed(std::move(number).take_error());
    if (auto end = fields.expect_end(); !end) return malformed(std::move(end).take_error());
    // Any limit beyond the longest chain we accept is no limit at all.
    return std::optional<unsigned>{static_cast<unsigned>(std::min<std::uint64_t>(*number, max_chain_length))};
}

Result<void> check_validity(const crypto::Certificate& certificate, UnixSeconds now) {
    if (now < certificate.not_before())
        return make_error("CertNotValidYet: {} is not valid before {}", certificate.subject_text(),
                          format_rfc3339(certificate.not_before()));
    if (now > certificate.not_after())
        return make_error("CertExpired: {} expired at {}", certificate.subject_text(), format_rfc3339(certificate.not_after()));
    return {};
}

// Depth-first search for a path from the leaf to the anchor through the supplied certificates.
// Signature results are memoised so that a hostile set of cross-signed look-alikes costs at most
// one verification per pair.
class PathBuilder {
public:
    PathBuilder(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& anchor, UnixSeconds now)
        : chain_(chain), anchor_(anchor), now_(now), used_(chain.size(), false),
          signature_cache_((chain.size() + 1) * chain.size()) {}

    // Indices into the chain of the intermediates, from the leaf's issuer up to (not including)
    // the anchor.
    Result<std::vector<std::size_t>> build() {
        used_[0] = true;
        if (extend(0)) return path_;
        if (failure_) return *failure_;
        return make_error("UnknownIssuer: the issuer of {} is neither the trust anchor nor in the chain",
                          chain_[0].subject_text());
    }

private:
    static constexpr std::size_t anchor_index = static_cast<std::size_t>(-1);

    bool extend(std::size_t current) {
        if (accept_issuer(current, anchor_, anchor_index)) return true;
        if (path_.size() + 2 >= max_chain_length) return false;  // leaf + path + anchor
        for (std::size_t candidate = 1; candidate < chain_.size(); ++candidate) {
            if (used_[candidate] || is_trust_anchor(chain_[candidate], anchor_)) continue;
            if (!accept_issuer(current, chain_[candidate], candidate)) continue;
            used_[candidate] = true;
            path_.push_back(candidate);
            if (extend(candidate)) return true;
            path_.pop_back();
            used_[candidate] = false;
        }
        return false;
    }

    bool accept_issuer(std::size_t current, const crypto::Certificate& issuer, std::size_t issuer_index) {
        const auto& subject = chain_[current];
        if (subject.issuer_der() != issuer.subject_der()) return false;
        if (!signature_verifies(current, issuer, issuer_index))
            return reject(make_error("InvalidSignatureForPublicKey: {} is not signed by the key of {}", subject.subject_text(),
                                     issuer.subject_text()));
        if (!issuer.is_ca())
            return reject(make_error("EndEntityUsedAsCa: {} issued {} but is not a CA", issuer.subject_text(),
                                     subject.subject_text()));
        auto limit = path_length_limit(issuer);
        if (!limit) return reject(std::move(limit).take_error());
        if (*limit && path_.size() > **limit)
            return reject(make_error("PathLenConstraintViolated: {} allows {} intermediate(s) below it, the path has {}",
                                     issuer.subject_text(), **limit, path_.size()));
        if (auto valid = check_validity(issuer, now_); !valid) return reject(std::move(valid).take_error());
        return true;
    }

    bool signature_verifies(std::size_t subject, const crypto::Certificate& issuer, std::size_t issuer_index) {
        std::size_t slot = (issuer_index == anchor_index ? 0 : issuer_index + 1) * chain_.size() + subject;
        auto& cached = signature_cache_[slot];
        if (!cached) cached = chain_[subject].verify_signature_by(issuer).ok();
        return *cached;
    }

    bool reject(Error error) {
        failure_ = std::move(error);
        return false;
    }

    const std::vector<crypto::Certificate>& chain_;
    const crypto::Certificate& anchor_;
    UnixSeconds now_;
    std::vector<bool> used_;
    std::vector<std::optional<bool>> signature_cache_;
    std::vector<std::size_t> path_;
    std::optional<Error> failure_;
};

// Every certificate below the anchor needs a current CRL from its issuer that does not list it;
// no CRL at all means the status is unknown, which fails.
Result<void> check_revocation(const crypto::Certificate& certificate, const crypto::Certificate& issuer,
                              const std::vector<Crl>& crls, UnixSeconds now) {
    bool covered = false;
    for (const auto& crl : crls) {
        if (crl.issuer_der() != certificate.issuer_der()) continue;
        if (auto signed_by = crl.verify_issued_by(issuer); !signed_by)
            return std::move(signed_by).take_error().context(
                fmt::format("InvalidCrlSignatureForPublicKey: CRL from {}", issuer.subject_text()));
        if (now < crl.this_update())
            return make_error("CRL from {} is not yet valid (thisUpdate {})", issuer.subject_text(),
                              format_rfc3339(crl.this_update()));
        if (now > crl.next_update())
            return make_error("CrlExpired: CRL expired: the CRL from {} was due for renewal at {}", issuer.subject_text(),
                              format_rfc3339(crl.next_update()));
        if (crl.lists_serial(certificate.serial()))
            return make_error("CertRevoked: certificate revoked: {}", certificate.subject_text());
        covered = true;
    }
    if (!covered)
        return make_error("UnknownRevocationStatus: no CRL from {} to check {}", issuer.subject_text(),
                          certificate.subject_text());
    return {};
}

}  // namespace

// A revocation does not lapse, so any CRL the anchor signed counts here whatever its dates; the
// dates of the CRLs that cover the certificates below are checked in verify_chain_at.
Result<void> check_anchor_not_revoked(const crypto::Certificate& trust_anchor, const std::vector<Crl>& crls,
                                      [[maybe_unused]] UnixSeconds now) {
    for (const auto& crl : crls) {
        if (crl.issuer_der() != trust_anchor.subject_der()) continue;
        if (auto signed_by = crl.verify_issued_by(trust_anchor); !signed_by)
            return std::move(signed_by).take_error().context(
                fmt::format("InvalidCrlSignatureForPublicKey: CRL from the trust anchor {}", trust_anchor.subject_text()));
        if (crl.lists_serial(trust_anchor.serial()))
            return make_error("CertRevoked: certificate revoked: the trust anchor {}", trust_anchor.subject_text());
    }
    return {};
}

Result<void> verify_chain_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                             const std::vector<Crl>& crls, UnixSeconds now) {
    if (chain.empty()) return make_error("empty certificate chain");
    if (chain.size() > max_chain_length)
        return make_error("certificate chain of {} certificates exceeds the limit of {}", chain.size(), max_chain_length);
    DSTACK_CHECK(check_anchor_not_revoked(trust_anchor, crls, now));
    const auto& leaf = chain.front();
    if (leaf.is_ca()) return make_error("CaUsedAsEndEntity: {} is a CA certificate", leaf.subject_text());
    DSTACK_CHECK(check_validity(leaf, now));
    DSTACK_CHECK(check_validity(trust_anchor, now));
    DSTACK_TRY(auto path, PathBuilder(chain, trust_anchor, now).build());

    const crypto::Certificate* subject = &leaf;
    for (std::size_t step = 0; step <= path.size(); ++step) {
        const auto& issuer = step < path.size() ? chain[path[step]] : trust_anchor;
        DSTACK_CHECK(check_revocation(*subject, issuer, crls, now));
        subject = &issuer;
    }
    return {};
}

}  // namespace dstack::tee
