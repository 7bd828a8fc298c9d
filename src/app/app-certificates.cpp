#include "dstack/app/app-certificates.hpp"

#include <limits>

#include "dstack/app/tls-certificates.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/kdf.hpp"
#include "dstack/crypto/x509-name.hpp"
#include "dstack/tee/eventlog.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::app {
namespace {

Result<void> check_app_id(ByteView app_id) {
    if (app_id.size() != app_id_size) return make_error("app_id must be {} bytes, not {}", app_id_size, app_id.size());
    return {};
}

Result<UnixSeconds> certificate_time(std::string_view what, std::uint64_t seconds) {
    if (seconds > static_cast<std::uint64_t>(std::numeric_limits<UnixSeconds>::max()))
        return make_error("csr: config.{}: {} is outside the years 1950-9999", what, seconds);
    return static_cast<UnixSeconds>(seconds);
}

}  // namespace

Result<crypto::P256PrivateKey> derive_app_ca_key(const crypto::P256PrivateKey& root_ca_key, ByteView app_id) {
    DSTACK_CHECK(check_app_id(app_id));
    return crypto::derive_p256_key(root_ca_key, {app_id, as_bytes("app-ca")});
}

Result<std::string> issue_app_ca_certificate(ByteView app_id, const crypto::P256PrivateKey& app_ca_key,
                                             const crypto::P256PrivateKey& root_ca_key,
                                             const crypto::Certificate& root_ca_cert, UnixSeconds now) {
    DSTACK_CHECK(check_app_id(app_id));
    crypto::CertificateSpec spec;
    spec.subject.organization = "Dstack";
    spec.subject.common_name = "Dstack App CA";
    spec.serial = rcgen_serial(app_ca_key.public_key());
    spec.not_before = default_not_before;
    spec.not_after = now + default_lifetime;
    spec.key_usage = crypto::key_usage::digital_signature | crypto::key_usage::key_cert_sign | crypto::key_usage::crl_sign;
    spec.is_ca = true;
    spec.path_length = 0;  // it signs leaves only
    spec.authority_key_identifier = false;  // rcgen writes none
    spec.extensions.push_back(crypto::dstack_extension(std::string(crypto::dstack_oid::app_id), app_id));
    spec.extensions.push_back(
        crypto::dstack_extension(std::string(crypto::dstack_oid::special_usage), as_bytes(app_ca_usage)));
    DSTACK_TRY(auto der, crypto::write_certificate(spec, app_ca_key.spki_der(), root_ca_key, root_ca_cert));
    return readable_pem(std::move(der));
}


Result<std::string> issue_app_certificate(const SignCertRequest& request, ByteView app_id, ByteView app_info,
                                          const crypto::P256PrivateKey& app_ca_key,
                                          const crypto::Certificate& app_ca_cert, UnixSeconds now) {
    DSTACK_CHECK(check_app_id(app_id));
    const auto& config = request.csr.config;
    TlsCertRequest leaf;
    leaf.organization = config.org_name;
    leaf.subject = config.subject;
    leaf.alt_names = config.subject_alt_names;
    leaf.usage_server_auth = config.usage_server_auth;
    leaf.usage_client_auth = config.usage_client_auth;
    leaf.app_id = Bytes(app_id.begin(), app_id.end());
    if (config.ext_app_info) {
        if (app_info.empty()) return make_error("csr: config.ext_app_info is set but there is no app info");
        leaf.app_info = Bytes(app_info.begin(), app_info.end());
    }
    leaf.special_usage = std::string(app_custom_usage);
    if (config.ext_quote) {
        auto attestation = tee::strip_evidence_for_certificate(request.evidence);
        if (!attestation) return std::move(attestation).take_error().context("csr: attestation for config.ext_quote");
        leaf.attestation = std::move(*attestation);
    }
    if (config.not_before) {
        DSTACK_TRY(leaf.not_before, certificate_time("not_before", *config.not_before));
    }
    if (config.not_after) {
        DSTACK_TRY(leaf.not_after, certificate_time("not_after", *config.not_after));
    }
    return issue_tls_certificate(leaf, ByteView(request.public_key), app_ca_key, app_ca_cert, now);
}

}  // namespace dstack::app
