// An RA-TLS certificate is evidence only while it is valid and signed: the quote inside commits to
// the certificate's key, but the certificate itself (its dates, names and the extension carrying
// the quote) is only what its signer wrote. Checked as upstream's verifier checks one
// (spec/verifier.md §4.6, --verify-cert): its validity period, and its signature by itself, or by
// the issuer certificate when the PEM carries one after it.
#include "check-list.hpp"

#include "dstack/app/verdict.hpp"
#include "dstack/base/clock.hpp"

namespace dstack::app {
namespace {

const CheckName validity_check{check_id::ratls_validity, "RA-TLS certificate validity"};
const CheckName signature_check{check_id::ratls_signature, "RA-TLS certificate signature"};

// "the certificate" for the leaf, "certificate N (subject)" for the others.
std::string which(const std::vector<crypto::Certificate>& certificates, std::size_t i) {
    if (i == 0) return "the certificate";
    return fmt::format("certificate {} of the PEM ({})", i + 1, certificates[i].subject_text());
}

void check_validity(const std::vector<crypto::Certificate>& certificates, UnixSeconds now, CheckList& checks) {
    for (std::size_t i = 0; i < certificates.size(); ++i) {
        const auto& certificate = certificates[i];
        if (now < certificate.not_before())
            return checks.fail(validity_check, fmt::format("{} is not valid before {} (verified at {})", which(certificates, i),
                                                           format_rfc3339(certificate.not_before()), format_rfc3339(now)));
        if (now > certificate.not_after())
            return checks.fail(validity_check, fmt::format("{} expired at {} (verified at {})", which(certificates, i),
                                                           format_rfc3339(certificate.not_after()), format_rfc3339(now)));
    }
    const auto& leaf = certificates.front();
    std::string detail = fmt::format("valid {} .. {}", format_rfc3339(leaf.not_before()), format_rfc3339(leaf.not_after()));
    if (certificates.size() > 1) detail += fmt::format("; the {} issuer certificate(s) too", certificates.size() - 1);
    checks.pass(validity_check, detail);
}

void check_signature(const std::vector<crypto::Certificate>& certificates, CheckList& checks) {
    const auto& leaf = certificates.front();
    if (certificates.size() == 1) {
        if (leaf.issuer_der() != leaf.subject_der())
            return checks.fail(signature_check, "not self-signed (its issuer is another name), and the PEM carries no issuer "
                                                "certificate to check its signature with");
        if (auto ok = leaf.verify_signature_by(leaf); !ok)
            return checks.fail(signature_check, fmt::format("self-signature: {}", ok.error().message));
        return checks.pass(signature_check, "self-signed");
    }
    // Each certificate by the one after it; the last one's own signer is not ours to judge (the
    // quote, not a CA, is what makes the key trustworthy).
    for (std::size_t i = 0; i + 1 < certificates.size(); ++i) {
        const auto& issuer = certificates[i + 1];
        if (!issuer.is_ca())
            return checks.fail(signature_check, fmt::format("{} is signed by {}, which is not a CA certificate",
                                                            which(certificates, i), issuer.subject_text()));
        if (certificates[i].issuer_der() != issuer.subject_der())
            return checks.fail(signature_check, fmt::format("{} was not issued by the next certificate of the PEM ({})",
                                                            which(certificates, i), issuer.subject_text()));
        if (auto ok = certificates[i].verify_signature_by(issuer); !ok)
            return checks.fail(signature_check, fmt::format("{} by {}: {}", which(certificates, i), issuer.subject_text(),
                                                            ok.error().message));
    }
    checks.pass(signature_check, fmt::format("signed by {}", certificates[1].subject_text()));
}

}  // namespace

void check_ratls_certificates(const std::vector<crypto::Certificate>& certificates, UnixSeconds now, CheckList& checks) {
    if (certificates.empty()) return;
    check_validity(certificates, now, checks);
    check_signature(certificates, checks);
}

}  // namespace dstack::app
