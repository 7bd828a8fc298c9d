// GetTlsKey, Tappd DeriveKey and the demo certificate (spec/agent.md §2.1, §3, §6.4): a P-256 key,
// a leaf certificate from the app CA and, for RA-TLS, the attestation of that key in extension
// 1.8 (report data SHA-512("ratls-cert:" || SPKI)).
#include "agent.hpp"

#include "dstack/app/app-info-encoding.hpp"
#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/log.hpp"
#include "dstack/crypto/random.hpp"
#include "event-log-forms.hpp"
#include "support/json-object.hpp"

namespace dstack::applets::agent {

struct Agent::CertOptions {
    std::string subject;
    std::vector<std::string> alt_names;
    bool server_auth = false;
    bool client_auth = false;
    bool ra_tls = false;
    bool app_info = false;
    std::optional<std::uint64_t> not_before, not_after;
};

std::string Agent::attestation_config() const {
    if (fixture_) return fixture_->vm_config.value_or("");
    return files_.sys_config_text;
}

Result<Reply> Agent::issue_certificate(const crypto::P256PrivateKey& key, const CertOptions& options) const {
    if (!ca_key_ || !ca_cert_) {
        return make_error(
            "not implemented: certificates for apps whose keys come from a KMS are signed by the KMS (SignCert), "
            "which this agent cannot reach yet");
    }
    app::TlsCertRequest request;
    request.subject = options.subject;
    request.alt_names = options.alt_names;
    request.usage_server_auth = options.server_auth;
    request.usage_client_auth = options.client_auth;
    if (options.not_before) request.not_before = static_cast<UnixSeconds>(*options.not_before);
    if (options.not_after) request.not_after = static_cast<UnixSeconds>(*options.not_after);
    if (options.ra_tls || options.app_info) {
        auto report_data = app::ratls_report_data(key.spki_der());
        tee::Fixed<64> fixed{};
        std::copy(report_data.begin(), report_data.end(), fixed.begin());
        DSTACK_TRY(auto attested, this->attested(fixed));
        if (options.ra_tls) {
            DSTACK_TRY(auto bytes, versioned_attestation(attested, certificate_event_log(attested), attestation_config()));
            request.attestation = std::move(bytes);
            if (settings_.legacy_cert_extensions) {
                request.legacy_quote = attested.quote;
                // What old verifiers replay RTMR3 from (the certificate form: ACPI DATA and runtime events).
                request.legacy_event_log = tee::event_log_to_json(certificate_event_log(attested));
            }
        }
        if (options.app_info) {
            DSTACK_TRY(auto info, app_info(attested));
            request.app_info = app::encode_app_info_msgpack(info);
        }
    }
    DSTACK_TRY(auto leaf, app::issue_tls_certificate(request, key, *ca_key_, *ca_cert_, system_now()));
    JsonObject out;
    out.string("key", key.pkcs8_pem());
    // The CA certificate as the app keys carry it, byte for byte.
    out.string_list("certificate_chain", {leaf, files_.keys.ca_cert_pem});
    return out.reply();
}

Result<Reply> Agent::get_tls_key(const app::GetTlsKeyArgs& args) const {
    // A fresh key on every call: HKDF over 32 random bytes, as upstream.
    auto seed = crypto::random_bytes(32);
    DSTACK_TRY(auto key, app::derive_tls_key(seed, ""));
    CertOptions options;
    options.subject = args.subject;
    options.alt_names = args.alt_names;
    options.server_auth = args.usage_server_auth;
    options.client_auth = args.usage_client_auth;
    options.ra_tls = args.usage_ra_tls;
    options.app_info = args.with_app_info;
    options.not_before = args.not_before;
    options.not_after = args.not_after;
    return issue_certificate(key, options);
}

Result<Reply> Agent::derive_key(const app::DeriveKeyArgs& args) const {
    Bytes ikm;
    if (args.random_seed) {
        ikm = crypto::random_bytes(32);
    } else {
        ikm = root_key_.k256_key;
    }
    DSTACK_TRY(auto key, app::derive_tls_key(ikm, args.path));
    CertOptions options;
    options.subject = args.subject;
    options.alt_names = args.alt_names;
    options.server_auth = args.usage_server_auth;
    options.client_auth = args.usage_client_auth;
    options.ra_tls = args.usage_ra_tls;
    return issue_certificate(key, options);
}

std::string Agent::app_cert() const {
    std::lock_guard lock(app_cert_mutex_);
    if (!app_cert_.empty() || !ca_key_) return app_cert_;
    // The demo certificate: a random key, subject "demo-cert", client auth, with the attestation.
    auto key = app::derive_tls_key(crypto::random_bytes(32), "");
    if (!key) return {};
    CertOptions options;
    options.subject = "demo-cert";
    options.client_auth = true;
    options.ra_tls = true;
    auto reply = issue_certificate(*key, options);
    if (!reply) {
        log::error("demo certificate: {}", reply.error().message);
        return {};
    }
    // The chain joined by newlines (each PEM already ends in one).
    auto text = reply->serialize();
    if (!text) return {};
    auto parsed = json::read_json(*text, {1024 * 1024, 8});
    if (!parsed) return {};
    std::string joined;
    for (const auto& pem : parsed->dom()["certificate_chain"].GetArray()) {
        if (!joined.empty()) joined += "\n";
        joined += pem.GetString();
    }
    app_cert_ = joined;
    return app_cert_;
}

}  // namespace dstack::applets::agent
