// DCAP's certificate rules at a pinned time: path building up to one pinned anchor, basic
// constraints, and revocation where a missing or stale CRL fails closed (webpki's
// UnknownStatusPolicy::Deny and ExpirationPolicy::Enforce, which dcap-qvl uses). Error texts carry
// webpki's error names (CaUsedAsEndEntity, UnknownIssuer, ...) for parity with dcap-qvl's messages.
#define MBEDTLS_ALLOW_PRIVATE_ACCESS  // the CRL's signature fields are private in mbedTLS 3

#include "dstack/tee/pki.hpp"

#include <algorithm>
#include <optional>

#include <mbedtls/asn1.h>
#include <mbedtls/x509_crl.h>

#include "dstack/crypto/p256.hpp"

namespace dstack::tee {

struct Crl::Impl {
    mbedtls_x509_crl crl;
    Bytes der;
    UnixSeconds this_update = 0;
    UnixSeconds next_update = 0;
    Impl() { mbedtls_x509_crl_init(&crl); }
    ~Impl() { mbedtls_x509_crl_free(&crl); }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
};

namespace {

// Intel's chains are three certificates deep; the bound keeps path search trivially small.
constexpr std::size_t max_chain_length = 8;
constexpr std::size_t max_crl_size = 1024 * 1024;
constexpr std::string_view basic_constraints_oid = "2.5.29.19";

Result<UnixSeconds> to_unix(const mbedtls_x509_time& time) {
    return parse_rfc3339(fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", time.year, time.mon, time.day, time.hour,
                                     time.min, time.sec));
}

// Serial numbers compare as numbers: a 00 sign byte (or any other leading zero) is not significant.
ByteView without_leading_zeros(ByteView serial) {
    std::size_t skip = 0;
    while (skip < serial.size() && serial[skip] == 0) ++skip;
    return serial.subspan(skip);
}

bool same_bytes(ByteView a, ByteView b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

// An anchor is a name and a key (as webpki holds it): another certificate with both is the anchor.
bool is_trust_anchor(const crypto::Certificate& certificate, const crypto::Certificate& anchor) {
    return certificate.subject_der() == anchor.subject_der() && certificate.spki_der() == anchor.spki_der();
}

// pathLenConstraint of BasicConstraints, if any; mbedTLS has already validated the extension.
Result<std::optional<unsigned>> path_length_limit(const crypto::Certificate& certificate) {
    auto value = certificate.extension(basic_constraints_oid);
    if (!value) return std::optional<unsigned>{};
    unsigned char* p = value->data();
    const unsigned char* end = p + value->size();
    std::size_t length = 0;
    if (mbedtls_asn1_get_tag(&p, end, &length, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
        return make_error("malformed BasicConstraints in {}", certificate.subject_text());
    end = p + length;
    if (p < end && *p == MBEDTLS_ASN1_BOOLEAN) {
        int ca = 0;
        if (mbedtls_asn1_get_bool(&p, end, &ca) != 0)
            return make_error("malformed BasicConstraints in {}", certificate.subject_text());
    }
    if (p == end) return std::optional<unsigned>{};
    int limit = 0;
    if (mbedtls_asn1_get_int(&p, end, &limit) != 0 || limit < 0 || p != end)
        return make_error("malformed BasicConstraints in {}", certificate.subject_text());
    return std::optional<unsigned>{static_cast<unsigned>(limit)};
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

Result<Crl> Crl::from_der(ByteView der) {
    if (der.size() > max_crl_size)
        return make_error("Failed to parse CRL: {} bytes exceed the {}-byte limit", der.size(), max_crl_size);
    if (der.empty()) return make_error("Failed to parse CRL: empty input");
    auto impl = std::make_shared<Impl>();
    int rc = mbedtls_x509_crl_parse_der(&impl->crl, der.data(), der.size());
    if (rc != 0) return make_error("Failed to parse CRL: mbedTLS error -0x{:04x}", static_cast<unsigned>(-rc));
    if (impl->crl.next != nullptr || impl->crl.raw.len != der.size()) return make_error("Failed to parse CRL: trailing data");
    // RFC 5280 lets nextUpdate out, but DCAP enforces CRL expiry, so a CRL without one is useless.
    if (impl->crl.next_update.year == 0) return make_error("Failed to parse CRL: no nextUpdate");
    auto this_update = to_unix(impl->crl.this_update);
    auto next_update = to_unix(impl->crl.next_update);
    if (!this_update || !next_update) return make_error("Failed to parse CRL: unreadable thisUpdate/nextUpdate");
    impl->this_update = *this_update;
    impl->next_update = *next_update;
    impl->der.assign(der.begin(), der.end());
    return Crl(std::move(impl));
}

const Bytes& Crl::der() const { return impl_->der; }

Bytes Crl::issuer_der() const {
    const auto& raw = impl_->crl.issuer_raw;
    return Bytes(raw.p, raw.p + raw.len);
}

UnixSeconds Crl::this_update() const { return impl_->this_update; }
UnixSeconds Crl::next_update() const { return impl_->next_update; }

bool Crl::lists_serial(ByteView serial) const {
    ByteView wanted = without_leading_zeros(serial);
    for (const mbedtls_x509_crl_entry* entry = &impl_->crl.entry; entry != nullptr; entry = entry->next) {
        if (entry->serial.p == nullptr || entry->serial.len == 0) continue;  // the empty head of a CRL with no entries
        if (same_bytes(without_leading_zeros(ByteView(entry->serial.p, entry->serial.len)), wanted)) return true;
    }
    return false;
}

Result<void> Crl::verify_issued_by(const crypto::Certificate& issuer) const {
    const auto& crl = impl_->crl;
    if (issuer_der() != issuer.subject_der()) return make_error("the CRL's issuer is not {}", issuer.subject_text());
    if (crl.sig_pk != MBEDTLS_PK_ECDSA || crl.sig_md != MBEDTLS_MD_SHA256)
        return make_error("the CRL is not signed with ECDSA-SHA256");
    DSTACK_TRY(auto key, issuer.p256_public_key());
    if (!crypto::p256_verify_der(key, ByteView(crl.tbs.p, crl.tbs.len), ByteView(crl.sig.p, crl.sig.len)))
        return make_error("the CRL's signature does not verify with the key of {}", issuer.subject_text());
    return {};
}

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

Result<void> verify_chain_path_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                                  UnixSeconds now) {
    DSTACK_CHECK(check_path_shape(chain, trust_anchor, now));
    auto path = PathBuilder(chain, trust_anchor, now).build();
    if (!path) return std::move(path).take_error();
    return {};
}

Result<void> verify_chain_at(const std::vector<crypto::Certificate>& chain, const crypto::Certificate& trust_anchor,
                             const std::vector<Crl>& crls, UnixSeconds now) {
    if (chain.empty()) return make_error("empty certificate chain");
    if (chain.size() > max_chain_length)
        return make_error("certificate chain of {} certificates exceeds the limit of {}", chain.size(), max_chain_length);
    DSTACK_CHECK(check_anchor_not_revoked(trust_anchor, crls, now));
    DSTACK_CHECK(check_path_shape(chain, trust_anchor, now));
    DSTACK_TRY(auto path, PathBuilder(chain, trust_anchor, now).build());

    const crypto::Certificate* subject = &chain.front();
    for (std::size_t step = 0; step <= path.size(); ++step) {
        const auto& issuer = step < path.size() ? chain[path[step]] : trust_anchor;
        DSTACK_CHECK(check_revocation(*subject, issuer, crls, now));
        subject = &issuer;
    }
    return {};
}

}  // namespace dstack::tee
