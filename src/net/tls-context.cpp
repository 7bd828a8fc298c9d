// TLS configuration: PEM parsing, trust anchors, ALPN and versions, turned into mbedTLS configs.
#include "tls-context.hpp"

#include <mutex>

#include "dstack/base/log.hpp"
#include "dstack/crypto/random.hpp"

namespace dstack::net::tls {

namespace {

int protocol_version(Version version) {
    return version == Version::tls1_3 ? MBEDTLS_SSL_VERSION_TLS1_3 : MBEDTLS_SSL_VERSION_TLS1_2;
}

Result<void> configure_common(ContextCore& core, int endpoint, Version min_version, Version max_version,
                              const std::vector<std::string>& alpn) {
    // TLS 1.3 in mbedTLS runs on PSA Crypto, which the crypto layer initialises once per process.
    DSTACK_CHECK(crypto::init());
    int ret = mbedtls_ssl_config_defaults(&core.config, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) return make_error("TLS configuration: {}", mbedtls_error_text(ret));
    mbedtls_ssl_conf_rng(&core.config, crypto::tls_random, nullptr);
    if (protocol_version(min_version) > protocol_version(max_version))
        return make_error("TLS configuration: min_version is above max_version");
    mbedtls_ssl_conf_min_tls_version(&core.config, static_cast<mbedtls_ssl_protocol_version>(protocol_version(min_version)));
    mbedtls_ssl_conf_max_tls_version(&core.config, static_cast<mbedtls_ssl_protocol_version>(protocol_version(max_version)));
    // We never resume sessions; tickets would only add state to keep right.
    mbedtls_ssl_conf_session_tickets(&core.config, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
    // P-256 first (mbedTLS's default puts X25519 first): our TLS 1.3 client sends its key share for
    // P-256, and a TLS 1.2 server picks it, so the key exchange runs on the P-256 engine. A TLS 1.3
    // client that sends only an X25519 share still gets X25519 (mbedTLS's code): refusing it would
    // cost that client a HelloRetryRequest round trip.
    static const std::uint16_t groups[] = {MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1, MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
                                           MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_SECP521R1,
                                           MBEDTLS_SSL_IANA_TLS_GROUP_NONE};
    mbedtls_ssl_conf_groups(&core.config, groups);

    for (auto& protocol : alpn) {
        if (protocol.empty() || protocol.size() > 255)
            return make_error("TLS configuration: ALPN protocol '{}' must be 1 to 255 bytes", protocol);
    }
    if (!alpn.empty()) {
        core.alpn = alpn;
        for (auto& protocol : core.alpn) core.alpn_list.push_back(protocol.c_str());
        core.alpn_list.push_back(nullptr);
        ret = mbedtls_ssl_conf_alpn_protocols(&core.config, core.alpn_list.data());
        if (ret != 0) return make_error("TLS configuration: ALPN: {}", mbedtls_error_text(ret));
    }
    return {};
}

Result<void> use_identity(ContextCore& core, const CertifiedKey& certified_key, std::string_view what) {
    auto identity = parse_identity(certified_key);
    if (!identity) return std::move(identity).take_error().context(what);
    core.identity = std::move(identity).value();
    int ret = mbedtls_ssl_conf_own_cert(&core.config, core.identity->certificates->get(), core.identity->key->get());
    if (ret != 0) return make_error("{}: {}", what, mbedtls_error_text(ret));
    return {};
}

}  // namespace

Result<std::shared_ptr<Identity>> parse_identity(const CertifiedKey& certified_key) {
    auto identity = std::make_shared<Identity>();
    DSTACK_TRY(identity->certificates, crypto::TlsCertificates::from_pem(certified_key.chain_pem, "certificate chain"));
    DSTACK_TRY(identity->key, crypto::TlsPrivateKey::from_pem(certified_key.key_pem));
    DSTACK_CHECK(crypto::check_key_pair(*identity->certificates, *identity->key));
    return identity;
}

Result<std::shared_ptr<Identity>> ServerContext::identity_for(std::string_view server_name) {
    if (!choose_certificate) return std::shared_ptr<Identity>();
    auto chosen = choose_certificate(server_name);
    if (!chosen) return std::shared_ptr<Identity>();
    auto key = std::make_pair(std::move(chosen->chain_pem), std::move(chosen->key_pem));
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    CertifiedKey source{key.first, key.second};
    auto identity = parse_identity(source);
    if (!identity) return std::move(identity).take_error().context(fmt::format("certificate for '{}'", server_name));
    // The choices come from our own callback, but bound the cache all the same.
    if (cache_.size() >= 1024) cache_.clear();
    cache_.emplace(std::move(key), *identity);
    return identity;
}

Result<std::shared_ptr<ServerContext>> make_server_context(ServerConfig config) {
    auto context = std::make_shared<ServerContext>();
    auto& core = context->core;
    DSTACK_CHECK(configure_common(core, MBEDTLS_SSL_IS_SERVER, config.min_version, config.max_version, config.alpn));
    if (config.verify_client && config.client_auth == ClientAuth::none)
        return make_error("TLS server: verify_client needs client_auth optional or required");
    DSTACK_CHECK(use_identity(core, config.certificate, "server certificate"));
    context->client_auth = config.client_auth;
    context->choose_certificate = std::move(config.choose_certificate);
    core.verify_hook = std::move(config.verify_client);
    core.handshake_timeout = config.handshake_timeout;

    int authmode = MBEDTLS_SSL_VERIFY_NONE;
    if (config.client_auth != ClientAuth::none) {
        if (!config.client_ca_pem.empty()) {
            auto anchors = crypto::TlsCertificates::from_pem(config.client_ca_pem, "client CA certificates");
            if (!anchors) return std::move(anchors).take_error();
            core.trust_anchors = std::move(anchors).value();
            mbedtls_ssl_conf_ca_chain(&core.config, core.trust_anchors->get(), nullptr);
        } else if (core.verify_hook) {
            core.hook_only = true;
        } else {
            return make_error("TLS server: client authentication needs client_ca_pem or a verify hook");
        }
        // Without anchors mbedTLS would refuse every chain; the hook then decides after the handshake.
        bool enforce_in_handshake = config.client_auth == ClientAuth::required && !core.hook_only;
        authmode = enforce_in_handshake ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_OPTIONAL;
    }
    mbedtls_ssl_conf_authmode(&core.config, authmode);
    mbedtls_ssl_conf_sni(&core.config, on_server_name, context.get());
    return context;
}

Result<std::shared_ptr<ClientContext>> make_client_context(ClientConfig config) {
    auto context = std::make_shared<ClientContext>();
    auto& core = context->core;
    DSTACK_CHECK(configure_common(core, MBEDTLS_SSL_IS_CLIENT, config.min_version, config.max_version, config.alpn));
    if (config.client_certificate) DSTACK_CHECK(use_identity(core, *config.client_certificate, "client certificate"));
    if (config.verify_server && config.verify_hostname && config.server_name.empty() && !config.ca_pem.empty())
        return make_error("TLS client: server_name is empty, so the server's name cannot be checked "
                          "(set server_name, or verify_hostname = false to check the chain only)");
    context->server_name = std::move(config.server_name);
    context->verify_server = config.verify_server;
    context->verify_hostname = config.verify_hostname;
    core.verify_hook = std::move(config.verify_server_hook);
    core.handshake_timeout = config.handshake_timeout;

    int authmode = MBEDTLS_SSL_VERIFY_NONE;
    if (config.verify_server) {
        if (!config.ca_pem.empty()) {
            auto anchors = crypto::TlsCertificates::from_pem(config.ca_pem, "CA certificates");
            if (!anchors) return std::move(anchors).take_error();
            core.trust_anchors = std::move(anchors).value();
            mbedtls_ssl_conf_ca_chain(&core.config, core.trust_anchors->get(), nullptr);
            // mbedTLS ties the name check to SNI; without a name check, check_peer() enforces
            // every other verification flag after the handshake.
            authmode = config.verify_hostname ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_OPTIONAL;
        } else if (core.verify_hook) {
            core.hook_only = true;
            authmode = MBEDTLS_SSL_VERIFY_OPTIONAL;
        } else {
            return make_error("TLS client: verifying the server needs ca_pem or a verify hook (or verify_server = false)");
        }
    }
    mbedtls_ssl_conf_authmode(&core.config, authmode);
    return context;
}

}  // namespace dstack::net::tls
