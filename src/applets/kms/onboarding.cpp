#include "onboarding.hpp"

#include <memory>

#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include "dstack/app/attested-peer.hpp"
#include "dstack/app/kms-client.hpp"
#include "dstack/app/kms-keys.hpp"
#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/log.hpp"
#include "dstack/crypto/secp256k1.hpp"
#include "dstack/net/http-client.hpp"
#include "self-identity.hpp"
#include "support/json-object.hpp"

namespace dstack::applets::kms {
namespace {

namespace http = net::http;

asio::awaitable<Result<Bytes>> attest_certificate_key(const KeySource& source, ByteView spki) {
    auto executor = co_await asio::this_coro::executor;
    auto attestation = co_await source.agent->attest(executor, app::ratls_report_data(spki));
    if (!attestation) co_return std::move(attestation).take_error();
    co_return tee::strip_attestation_for_certificate(*attestation);
}

struct Exchange {
    Exchange() = default;
    http::Response response;
    std::vector<Bytes> server_chain;
};

// One JSON prpc call over TLS; the server chain is captured for the caller to judge (the TLS
// layer checks nothing here: upstream's RaClient with no server verification).
asio::awaitable<Result<Exchange>> call_source(std::string base, std::string method, std::string body,
                                              std::optional<net::tls::CertifiedKey> client_certificate) {
    auto executor = co_await asio::this_coro::executor;
    auto chain = std::make_shared<std::vector<Bytes>>();
    http::ClientOptions options;
    options.total_timeout = std::chrono::seconds(60);
    options.max_response_bytes = 1024 * 1024;
    net::tls::ClientConfig tls;
    tls.verify_server = false;
    tls.verify_hostname = false;
    tls.client_certificate = std::move(client_certificate);
    tls.verify_server_hook = [chain](const std::vector<Bytes>& der) -> Result<void> {
        *chain = der;
        return {};
    };
    options.tls_config = std::move(tls);
    std::string url = fmt::format("{}/{}?json", base, method);
    auto response = co_await http::post(executor, url, std::move(body), "application/json", options);
    if (!response) co_return response.error().context(fmt::format("{} {}", method, base));
    if (response->status != 200) {
        co_return make_error("{} {}: HTTP {}: {}", method, base, response->status, response->body.substr(0, 512));
    }
    Exchange out;
    out.response = std::move(*response);
    out.server_chain = *chain;
    co_return out;
}

// The source KMS's server certificate: its attestation, verified, with the root CA it returned
// as the issuer its certificate must chain to.
asio::awaitable<Result<app::AttestedPeer>> verify_source(const KeySource& source, const std::vector<Bytes>& chain,
                                                         const crypto::Certificate& root_ca) {
    auto evidence = app::peer_evidence(chain, root_ca);
    if (!evidence) co_return evidence.error().context("the source KMS's certificate carries no usable attestation");
    auto peer = co_await app::verify_attested_peer(*source.verifier, *evidence, false);
    if (!peer) co_return peer.error().context("the source KMS's attestation");
    co_return peer;
}

Result<json::Document> parse_reply(const http::Response& response, std::string_view what) {
    auto document = json::read_json(response.body, {1024 * 1024, 16});
    if (!document) return document.error().context(what);
    if (!document->root().is_object()) return make_error("{}: not a JSON object", what);
    return document;
}

}  // namespace

asio::awaitable<Result<void>> check_self_allowed(const KeySource& source, std::string_view what) {
    if (!source.settings->enforce_self_authorization) co_return Result<void>();
    auto info = co_await own_boot_info(*source.agent, *source.verifier);
    if (!info) co_return info.error().context(fmt::format("KMS is not allowed to {}", what));
    auto decision = co_await source.authorizer->check(*info, app::KmsAuthTarget::kms);
    if (!decision) co_return decision.error().context(fmt::format("KMS is not allowed to {}", what));
    if (!decision->allowed) co_return make_error("KMS is not allowed to {}: {}", what, decision->reason);
    co_return Result<void>();
}

asio::awaitable<Result<app::KmsKeys>> bootstrap_keys(const KeySource& source, std::string domain, bool attest) {
    if (auto valid = app::validate_kms_domain(domain); !valid) co_return std::move(valid).take_error();
    if (auto allowed = co_await check_self_allowed(source, "bootstrap"); !allowed) co_return std::move(allowed).take_error();
    auto now = system_now();
    auto keys = app::generate_kms_keys(domain, now);
    if (!keys) co_return std::move(keys).take_error();
    if (attest) {
        const auto& root = keys->epochs.front();
        auto report_data = app::bootstrap_report_data(root.ca_key.spki_der(), root.k256_key.public_key_compressed());
        auto executor = co_await asio::this_coro::executor;
        auto attestation = co_await source.agent->attest(executor, report_data);
        if (!attestation) co_return attestation.error().context("attesting the new keys");
        app::BootstrapInfo info;
        info.ca_pubkey = root.ca_key.spki_der();
        info.k256_pubkey = root.k256_key.public_key_compressed();
        info.attestation = std::move(*attestation);
        keys->bootstrap_info = std::move(info);
    }
    co_return co_await refresh_certificates(source, std::move(*keys));
}

asio::awaitable<Result<app::KmsKeys>> refresh_certificates(const KeySource& source, app::KmsKeys keys) {
    auto now = system_now();
    std::optional<Bytes> attestation;
    if (source.settings->attest_rpc_cert) {
        auto attested = co_await attest_certificate_key(source, keys.rpc_key.spki_der());
        if (!attested) co_return attested.error().context("attesting the RPC certificate (attest_rpc_cert)");
        attestation = std::move(*attested);
    }
    auto renewed = app::renew_kms_certificates(keys, attestation, now);
    if (!renewed) co_return std::move(renewed).take_error();
    co_return keys;
}

asio::awaitable<Result<app::KmsKeys>> onboard_keys(const KeySource& source, std::string source_url, std::string domain) {
    if (auto valid = app::validate_kms_domain(domain); !valid) co_return std::move(valid).take_error();
    if (auto allowed = co_await check_self_allowed(source, "onboard"); !allowed) co_return std::move(allowed).take_error();
    std::string base = app::kms_prpc_base(source_url);

    // Connection A: the temp CA, and the source's attestation.
    std::optional<net::tls::CertifiedKey> no_certificate;
    auto first = co_await call_source(base, "GetTempCaCert", "{}", no_certificate);
    if (!first) co_return std::move(first).take_error();
    auto reply = parse_reply(first->response, "GetTempCaCert response");
    if (!reply) co_return std::move(reply).take_error();
    auto object = reply->root().object();
    auto temp_ca_cert_text = object->string("temp_ca_cert");
    auto temp_ca_key_text = object->string("temp_ca_key");
    auto ca_cert_text = object->string("ca_cert");
    if (!temp_ca_cert_text || !temp_ca_key_text || !ca_cert_text) {
        co_return make_error("GetTempCaCert response: {}", !temp_ca_cert_text ? temp_ca_cert_text.error().message
                                                            : !temp_ca_key_text ? temp_ca_key_text.error().message
                                                                                : ca_cert_text.error().message);
    }
    std::string temp_ca_cert_pem = *temp_ca_cert_text, temp_ca_key_pem = *temp_ca_key_text, ca_cert_pem = *ca_cert_text;
    auto root_ca = crypto::Certificate::from_pem(ca_cert_pem);
    if (!root_ca) co_return root_ca.error().context("GetTempCaCert response: ca_cert");
    auto temp_ca = crypto::Certificate::from_pem(temp_ca_cert_pem);
    if (!temp_ca) co_return temp_ca.error().context("GetTempCaCert response: temp_ca_cert");
    auto temp_ca_key = crypto::P256PrivateKey::from_pem(temp_ca_key_pem);
    if (!temp_ca_key) co_return temp_ca_key.error().context("GetTempCaCert response: temp_ca_key");
    app::TempCaCert temp{temp_ca_cert_pem, temp_ca_key_pem, ca_cert_pem, *temp_ca, *temp_ca_key, *root_ca};
    auto source_peer = co_await verify_source(source, first->server_chain, *root_ca);
    if (!source_peer) co_return source_peer.error().context(fmt::format("onboarding from {}", base));
    Bytes pinned_spki = crypto::Certificate::from_der(first->server_chain.front())->spki_der();

    // The receiver's own policy must allow the source.
    auto source_info = boot_info_of(*source_peer, "");
    if (!source_info) co_return std::move(source_info).take_error();
    auto decision = co_await source.authorizer->check(*source_info, app::KmsAuthTarget::kms);
    if (!decision) co_return decision.error().context("the source KMS is not allowed");
    if (!decision->allowed) co_return make_error("the source KMS is not allowed: {}", decision->reason);

    // Connection B: our RA-TLS client certificate; the server must be the one verified on A.
    auto client_key = crypto::P256PrivateKey::generate();
    if (!client_key) co_return std::move(client_key).take_error();
    auto attestation = co_await attest_certificate_key(source, client_key->spki_der());
    if (!attestation) co_return std::move(attestation).take_error();
    auto now = system_now();
    auto client_cert = app::issue_ratls_client_certificate(*client_key, temp, std::move(*attestation), now);
    if (!client_cert) co_return std::move(client_cert).take_error();
    auto executor = co_await asio::this_coro::executor;
    auto vm_config = co_await source.agent->vm_config(executor);
    if (!vm_config) co_return std::move(vm_config).take_error();
    JsonObject body;
    body.string("vm_config", *vm_config);
    body.boolean("all_epochs", true);
    auto body_text = body.reply().serialize();
    if (!body_text) co_return std::move(body_text).take_error();
    // Built before the call: an aggregate temporary passed to a coroutine is miscompiled by g++ 12.
    std::optional<net::tls::CertifiedKey> certificate(std::in_place);
    certificate->chain_pem = *client_cert;
    certificate->key_pem = client_key->pkcs8_pem();
    auto second = co_await call_source(base, "GetKmsKey", std::move(*body_text), certificate);
    if (!second) co_return std::move(second).take_error();
    if (second->server_chain.empty()) co_return make_error("GetKmsKey {}: the server sent no certificate", base);
    auto second_leaf = crypto::Certificate::from_der(second->server_chain.front());
    if (!second_leaf || second_leaf->spki_der() != pinned_spki) {
        co_return make_error("GetKmsKey {}: the server's key is not the one whose attestation was verified on the first "
                             "connection (an interception?)", base);
    }
    if (auto again = co_await verify_source(source, second->server_chain, *root_ca); !again) {
        co_return again.error().context(fmt::format("GetKmsKey {}", base));
    }
    auto keys_reply = parse_reply(second->response, "GetKmsKey response");
    if (!keys_reply) co_return std::move(keys_reply).take_error();
    auto handed = app::parse_kms_key_response(keys_reply->root());
    if (!handed) co_return handed.error().context("GetKmsKey response");
    // The root CA the source named must be its epoch-0 key's.
    if (handed->sets.front().second.first.spki_der() != root_ca->spki_der()) {
        co_return make_error("GetKmsKey response: the root CA key does not match the source's root CA certificate");
    }
    auto keys = app::assemble_onboarded_keys(std::move(*handed), domain, now);
    if (!keys) co_return std::move(keys).take_error();
    log::info("onboarded from {}: {} key epoch(s), root CA {}", base, keys->epochs.size(),
              hex_encode(crypto::sha256(keys->epochs.front().ca_key.spki_der())).substr(0, 16));
    co_return co_await refresh_certificates(source, std::move(*keys));
}

}  // namespace dstack::applets::kms
