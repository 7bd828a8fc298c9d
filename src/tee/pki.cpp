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

// Intel's chains are three certificates deep; the bounds keep path search trivially small.
constexpr std::size_t max_chain_length = 8;
constexpr std::size_t max_path_intermediates = 3;
constexpr std::string_view basic_constraints_oid = "2.5.29.19";

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

// Depth-first search for a path from the leaf to the anchor through the supplied certificates,
// bounded so that a chain stuffed with look-alike or looping CA certificates costs no more than a
// normal one (RFC 4158's loop detection and memoisation, with a hard budget on top):
// - identical certificates count once, and a certificate from which no path was found is not
//   tried again (failures are remembered by exact bytes, for this call);
// - a CA, that is a name and a key, appears at most once in a path, so copies cannot loop;
// - signature results are remembered per (certificate, issuer key): copies of one CA cost one
//   verification;
// - at most max_issuer_candidates certificates are tried as issuers in all, and a path holds at
//   most max_path_intermediates;
// - certificates the anchor's name issued come first, since they end a path.
// A failure found this way can refuse a contrived chain that a search over every order would
// accept; DCAP's chains (leaf, one intermediate, the root) never need more than the first try.
class PathBuilder {
public:
    PathBuilder(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& anchor, UnixSeconds now,
                ChainWork& work)
        : anchor_(node_of(anchor)), now_(now), work_(work) {
        nodes_.push_back(node_of(chain.front()));
        for (std::size_t i = 1; i < chain.size(); ++i) {
            Node node = node_of(chain[i]);
            // A certificate with the anchor's name and key is the anchor (webpki holds anchors so).
            if (node.same_ca(anchor_)) continue;
            bool duplicate = std::any_of(nodes_.begin(), nodes_.end(),
                                         [&node](const Node& seen) { return seen.certificate->der() == node.certificate->der(); });
            if (!duplicate) nodes_.push_back(std::move(node));
        }
    }

    // The intermediates, from the leaf's issuer up to (not including) the anchor.
    Result<std::vector<const crypto::Certificate*>> build() {
        nodes_[0].on_path = true;
        if (extend(0)) {
            std::vector<const crypto::Certificate*> path;
            for (auto index : path_) path.push_back(nodes_[index].certificate);
            return path;
        }
        if (failure_) return *failure_;
        return make_error("UnknownIssuer: the issuer of {} is neither the trust anchor nor in the chain",
                          nodes_[0].certificate->subject_text());
    }

private:
    struct Node {
        const crypto::Certificate* certificate = nullptr;
        Bytes subject, issuer, spki;
        bool on_path = false;
        bool dead = false;  // no path to the anchor from here

        bool same_ca(const Node& other) const { return subject == other.subject && spki == other.spki; }
    };

    struct Signature {
        std::size_t subject;
        const Bytes* issuer_spki;
        bool valid;
    };

    static Node node_of(const crypto::Certificate& certificate) {
        return Node{&certificate, certificate.subject_der(), certificate.issuer_der(), certificate.spki_der()};
    }

    bool extend(std::size_t current) {
        if (nodes_[current].issuer == anchor_.subject && accept_issuer(current, anchor_)) return true;
        if (exhausted_) return false;
        // Two passes: first the certificates the anchor's name issued, then the others.
        for (bool anchor_issued : {true, false}) {
            for (std::size_t candidate = 1; candidate < nodes_.size(); ++candidate) {
                Node& node = nodes_[candidate];
                if (node.on_path || node.dead || node.subject != nodes_[current].issuer) continue;
                if ((node.issuer == anchor_.subject) != anchor_issued) continue;
                if (repeats_ca_in_path(node)) {
                    reject(make_error("UnknownIssuer: no path from {} to the trust anchor: {} would appear twice in it (the "
                                      "chain holds look-alike or looping CA certificates)",
                                      nodes_[0].certificate->subject_text(), node.certificate->subject_text()));
                    continue;
                }
                if (path_.size() >= max_path_intermediates) {
                    reject(make_error("MaximumPathDepthExceeded: no path from {} to the trust anchor within {} intermediates",
                                      nodes_[0].certificate->subject_text(), max_path_intermediates));
                    return false;
                }
                if (!accept_issuer(current, node)) {
                    if (exhausted_) return false;
                    continue;
                }
                node.on_path = true;
                path_.push_back(candidate);
                if (extend(candidate)) return true;
                path_.pop_back();
                node.on_path = false;
                node.dead = true;
                if (exhausted_) return false;
            }
        }
        return false;
    }

    bool repeats_ca_in_path(const Node& node) const {
        if (node.same_ca(nodes_[0])) return true;
        return std::any_of(path_.begin(), path_.end(), [&](std::size_t index) { return nodes_[index].same_ca(node); });
    }

    // `issuer` carries the name `current` names as its issuer.
    bool accept_issuer(std::size_t current, const Node& issuer_node) {
        if (candidates_tried_ == max_issuer_candidates) {
            exhausted_ = true;
            return reject(make_error("MaximumPathBuildCallsExceeded: no path from {} to the trust anchor after trying {} "
                                     "candidate issuers (the chain holds look-alike or looping CA certificates)",
                                     nodes_[0].certificate->subject_text(), max_issuer_candidates));
        }
        ++candidates_tried_;
        ++work_.issuer_candidates;
        const auto& subject = *nodes_[current].certificate;
        const auto& issuer = *issuer_node.certificate;
        if (!signature_verifies(current, issuer_node))
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

    bool signature_verifies(std::size_t subject, const Node& issuer) {
        for (const auto& known : signatures_)
            if (known.subject == subject && *known.issuer_spki == issuer.spki) return known.valid;
        ++work_.signature_verifications;
        bool valid = nodes_[subject].certificate->verify_signature_by(*issuer.certificate).ok();
        signatures_.push_back({subject, &issuer.spki, valid});
        return valid;
    }

    bool reject(Error error) {
        failure_ = std::move(error);
        return false;
    }

    std::vector<Node> nodes_;  // [0] is the leaf; the rest distinct, none the anchor
    const Node anchor_;
    UnixSeconds now_;
    ChainWork& work_;
    std::vector<std::size_t> path_;
    std::vector<Signature> signatures_;
    std::size_t candidates_tried_ = 0;
    bool exhausted_ = false;
    std::optional<Error> failure_;
};

// Every certificate below the anchor needs a current CRL from its issuer that does not list it;
// no CRL at all means the status is unknown, which fails.
Result<void> check_revocation(const crypto::Certificate& certificate, const crypto::Certificate& issuer,
                              const std::vector<Crl>& crls, UnixSeconds now, ChainWork& work) {
    bool covered = false;
    for (const auto& crl : crls) {
        if (crl.issuer_der() != certificate.issuer_der()) continue;
        ++work.signature_verifications;
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

// A revocation does not lapse, so any CRL the anchor signed counts here whatever its dates; the
// dates of the CRLs that cover the certificates below are checked in verify_chain_at.
Result<void> anchor_not_revoked(const crypto::Certificate& trust_anchor, const std::vector<Crl>& crls, ChainWork& work) {
    for (const auto& crl : crls) {
        if (crl.issuer_der() != trust_anchor.subject_der()) continue;
        ++work.signature_verifications;
        if (auto signed_by = crl.verify_issued_by(trust_anchor); !signed_by)
            return std::move(signed_by).take_error().context(
                fmt::format("InvalidCrlSignatureForPublicKey: CRL from the trust anchor {}", trust_anchor.subject_text()));
        if (crl.lists_serial(trust_anchor.serial()))
            return make_error("CertRevoked: certificate revoked: the trust anchor {}", trust_anchor.subject_text());
    }
    return {};
}

// What every path needs before the search: a bounded chain, a leaf that is no CA, and a leaf and
// anchor valid at `now`.
Result<void> check_path_shape(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                              UnixSeconds now) {
    if (chain.empty()) return make_error("empty certificate chain");
    if (chain.size() > max_chain_length)
        return make_error("certificate chain of {} certificates exceeds the limit of {}", chain.size(), max_chain_length);
    const auto& leaf = chain.front();
    if (leaf.is_ca()) return make_error("CaUsedAsEndEntity: {} is a CA certificate", leaf.subject_text());
    DSTACK_CHECK(check_validity(leaf, now));
    DSTACK_CHECK(check_validity(trust_anchor, now));
    return {};
}

}  // namespace

Result<void> verify_chain_path_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                                  UnixSeconds now) {
    DSTACK_CHECK(check_path_shape(chain, trust_anchor, now));
    ChainWork unused;
    auto path = PathBuilder(chain, trust_anchor, now, unused).build();
    if (!path) return std::move(path).take_error();
    return {};
}

Result<void> check_anchor_not_revoked(const crypto::Certificate& trust_anchor, const std::vector<Crl>& crls,
                                      [[maybe_unused]] UnixSeconds now) {
    ChainWork work;
    return anchor_not_revoked(trust_anchor, crls, work);
}

Result<void> verify_chain_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                             const std::vector<Crl>& crls, UnixSeconds now, ChainWork* work) {
    ChainWork unused;
    ChainWork& counted = work ? *work : unused;
    DSTACK_CHECK(check_path_shape(chain, trust_anchor, now));
    DSTACK_CHECK(anchor_not_revoked(trust_anchor, crls, counted));
    DSTACK_TRY(auto path, PathBuilder(chain, trust_anchor, now, counted).build());

    const crypto::Certificate* subject = &chain.front();
    for (std::size_t step = 0; step <= path.size(); ++step) {
        const auto& issuer = step < path.size() ? *path[step] : trust_anchor;
        DSTACK_CHECK(check_revocation(*subject, issuer, crls, now, counted));
        subject = &issuer;
    }
    return {};
}

}  // namespace dstack::tee
