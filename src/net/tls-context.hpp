// Internal to the TLS implementation: the parsed, immutable state behind ServerContext and
// ClientContext, shared by every connection made from them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <string>
#include <vector>

#include <mbedtls/ssl.h>

#include "dstack/crypto/tls-credentials.hpp"
#include "dstack/net/tls.hpp"

namespace dstack::net::tls {

using crypto::mbedtls_error_text;

// Parsed by the crypto layer; pinned on the heap for as long as any configuration or connection
// that mbedTLS lets point into them lives.
struct Identity {
    std::unique_ptr<crypto::TlsCertificates> certificates;
    std::unique_ptr<crypto::TlsPrivateKey> key;
};

Result<std::shared_ptr<Identity>> parse_identity(const CertifiedKey& certified_key);

// mbedTLS's SNI callback (defined with the connection, whose state it fills in).
int on_server_name(void* server_context, mbedtls_ssl_context* ssl, const unsigned char* name, std::size_t length);

// What both sides share: the mbedTLS configuration and the storage it points to.
struct ContextCore {
    mbedtls_ssl_config config;
    std::vector<std::string> alpn;
    std::vector<const char*> alpn_list;  // null-terminated view of `alpn`, as mbedTLS wants it
    std::shared_ptr<Identity> identity;
    std::unique_ptr<crypto::TlsCertificates> trust_anchors;
    VerifyHook verify_hook;
    // No trust anchors, so the chain cannot be anchored: only the hook decides (RA-TLS).
    bool hook_only = false;
    std::chrono::milliseconds handshake_timeout{30000};

    ContextCore() { mbedtls_ssl_config_init(&config); }
    ~ContextCore() { mbedtls_ssl_config_free(&config); }
    ContextCore(const ContextCore&) = delete;
    ContextCore& operator=(const ContextCore&) = delete;
};

}  // namespace dstack::net::tls

namespace dstack::net::tls {

class ServerContext {
public:
    ContextCore core;
    ClientAuth client_auth = ClientAuth::none;
    std::function<std::optional<CertifiedKey>(std::string_view)> choose_certificate;

    // The certificate chosen for a server name, parsed once per distinct certificate: the cache
    // is keyed by what the server chose, never by the client-sent name, so new names cost nothing.
    Result<std::shared_ptr<Identity>> identity_for(std::string_view server_name);

private:
    std::mutex cache_mutex_;
    // (chain_pem, key_pem) -> parsed identity.
    std::map<std::pair<std::string, std::string>, std::shared_ptr<Identity>> cache_;
};

class ClientContext {
public:
    ContextCore core;
    std::string server_name;
    bool verify_server = true;
    bool verify_hostname = true;
};

}  // namespace dstack::net::tls
