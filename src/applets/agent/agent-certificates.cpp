// GetTlsKey, Tappd DeriveKey and the demo certificate (spec/agent.md §2.1, §3, §6.4): a P-256 key,
// a leaf certificate from the app CA and, for RA-TLS, the attestation of that key in extension
// 1.8 (report data SHA-512("ratls-cert:" || SPKI)).
#include "agent.hpp"

#include "dstack/app/app-info-encoding.hpp"
#include "dstack/app/cert-signing-request.hpp"
#include "dstack/app/kms-client.hpp"
#include "dstack/net/blocking.hpp"
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

// Keys from a KMS: the KMS holds the app CA, so the certificate comes from its SignCert (what
// upstream's cert-client does): a CSR with this key's attestation, signed by the key. Blocks this
// worker thread for the round trip (bounded by the client's timeouts).
Result<Reply> Agent::kms_certificate(const crypto::P256PrivateKey& key, const CertOptions& options) const {
    const auto& provider = files_.keys.key_provider;
    if (provider.url.empty()) return make_error("the app keys name no KMS URL (key_provider.Kms.url)");
    auto report_data = app::ratls_report_data(key.spki_der());
    tee::Fixed<64> fixed{};
    std::copy(report_data.begin(), report_data.end(), fixed.begin());
    DSTACK_TRY(auto attested, this->attested(fixed));
    app::CertSigningRequest csr;
    csr.version = 2;
    csr.pubkey = key.spki_der();
    csr.config.subject = options.subject;
    csr.config.subject_alt_names = options.alt_names;
    csr.config.usage_server_auth = options.server_auth;
    csr.config.usage_client_auth = options.client_auth;
    csr.config.ext_quote = options.ra_tls;
    csr.config.ext_app_info = options.app_info;
    csr.config.not_before = options.not_before;
    csr.config.not_after = options.not_after;
    DSTACK_TRY(csr.attestation, versioned_attestation(attested, certificate_event_log(attested), attestation_config()));
    DSTACK_TRY(auto signed_csr, app::sign_cert_signing_request(csr, key));
    auto chain = net::run_blocking(app::kms_sign_cert(asio::system_executor(), provider.url, files_.keys.ca_cert_pem, 2,
                                                      std::move(signed_csr.csr), std::move(signed_csr.signature),
                                                      files_.sys_config.vm_config),
                                   "KMS SignCert");
    if (!chain) return std::move(chain).take_error().context("the KMS did not sign the certificate");
    JsonObject out;
    out.string("key", key.pkcs8_pem());
    out.string_list("certificate_chain", *chain);
    return out.reply();
}

Result<Reply> Agent::issue_certificate(const crypto::P256PrivateKey& key, const CertOptions& options) const {
    if (files_.keys.key_provider.kind == app::KeyProvider::Kind::kms && !fixture_) return kms_certificate(key, options);
    if (!ca_key_ || !ca_cert_) return make_error("no app CA: the app keys carry no CA key");
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
