// TLS 1.3 / 1.2 over any Stream, on mbedTLS 3.6 (server and client).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/stream.hpp"

namespace dstack::net::tls {

enum class Version { tls1_2, tls1_3 };

// A certificate chain (leaf first) and its private key, both PEM.
struct CertifiedKey {
    std::string chain_pem;
    std::string key_pem;
};

// Called after the handshake's chain checks with the peer's chain as DER (leaf first).
// RA-TLS uses it to verify the attestation carried in the leaf certificate.
using VerifyHook = std::function<Result<void>(const std::vector<Bytes>& peer_chain_der)>;

enum class ClientAuth { none, optional, required };

struct ServerConfig {
    CertifiedKey certificate;  // used when no SNI callback matches or the client sends no SNI
    // Picks a certificate by the SNI host name; nullopt keeps the default one.
    std::function<std::optional<CertifiedKey>(std::string_view server_name)> choose_certificate;
    std::vector<std::string> alpn;  // server preference order; empty: no ALPN
    ClientAuth client_auth = ClientAuth::none;
    std::string client_ca_pem;      // trust anchors for client chains (required unless a hook decides)
    VerifyHook verify_client;       // extra check on the client chain; needs client_auth optional or required
    Version min_version = Version::tls1_2;
    Version max_version = Version::tls1_3;
    // The handshake fails (and the transport is closed) when it takes longer than this.
    std::chrono::milliseconds handshake_timeout{30000};
};

struct ClientConfig {
    std::string server_name;        // SNI, and the name the server certificate must carry
    std::string ca_pem;             // trust anchors; empty: the hook alone decides (RA-TLS)
    bool verify_server = true;      // false only for explicit "no check" bootstrap calls
    // Check that the server certificate carries server_name. With trust anchors (ca_pem) and
    // verify_server, an empty server_name is refused unless this is explicitly false; a hook-only
    // configuration (RA-TLS) leaves the identity check to its hook.
    bool verify_hostname = true;
    std::vector<std::string> alpn;
    std::optional<CertifiedKey> client_certificate;
    VerifyHook verify_server_hook;
    Version min_version = Version::tls1_2;
    Version max_version = Version::tls1_3;
    std::chrono::milliseconds handshake_timeout{30000};
};

class ServerContext;
class ClientContext;
Result<std::shared_ptr<ServerContext>> make_server_context(ServerConfig config);
Result<std::shared_ptr<ClientContext>> make_client_context(ClientConfig config);

// What the handshake settled, for handlers and logs.
struct SessionInfo {
    Version version = Version::tls1_3;
    std::string cipher_suite;
    std::string alpn;              // empty when none was negotiated
    std::string server_name;       // SNI the client sent (server side)
    std::vector<Bytes> peer_chain_der;
};

class TlsStream : public Stream {
public:
    // Both run the full handshake over `transport`; failures carry mbedTLS's reason.
    static asio::awaitable<Result<std::unique_ptr<TlsStream>>> accept(StreamPtr transport,
                                                                     std::shared_ptr<ServerContext> context);
    static asio::awaitable<Result<std::unique_ptr<TlsStream>>> connect(StreamPtr transport,
                                                                      std::shared_ptr<ClientContext> context);
    virtual const SessionInfo& session() const = 0;
};

}  // namespace dstack::net::tls
