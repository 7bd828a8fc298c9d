// The guest side of the gateway (spec/gateway.md §5), as upstream's dstack-util registers a CVM:
// RegisterCvm over TLS that trusts only the KMS root CA, presenting the app's KMS-signed client
// certificate (which carries its app info), and checking that the gateway's own certificate
// names the gateway app the KMS told the CVM about. Then the WireGuard configuration the CVM runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"
#include "dstack/net/tls.hpp"

namespace dstack::app {

struct GatewayServer {
    std::string public_key;  // base64
    std::string ip;          // with its prefix, "10.0.0.1/24"
    std::string endpoint;    // "host:port"
};

struct GatewayRegistration {
    GatewayRegistration() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)
    std::string client_ip;
    std::vector<GatewayServer> servers;
    std::uint32_t external_port = 0, internal_port = 0;
    std::string domain, app_address_ns_prefix;
};

struct GatewayClientOptions {
    GatewayClientOptions() = default;
    net::tls::CertifiedKey client_certificate;  // the app's, signed by the KMS (app-info extension)
    std::string kms_root_ca_pem;                // the only trust anchor
    // The gateway's app id (hex) its certificate must carry; "any" checks none (upstream's value
    // for "no check").
    std::string gateway_app_id = "any";
    std::string port_policy_json;  // {"ports":[{"port":80,"pp":false}],"restrict_mode":true}, or empty
    std::chrono::milliseconds timeout{30'000};
};

// RegisterCvm at `gateway_url` ("https://gw:8010" → ".../prpc/RegisterCvm?json").
asio::awaitable<Result<GatewayRegistration>> register_with_gateway(asio::any_io_executor executor, std::string gateway_url,
                                                                   std::string wg_public_key, GatewayClientOptions options);

// Reads RegisterCvm's JSON answer (strict; exposed for tests).
Result<GatewayRegistration> parse_gateway_registration(std::string_view json);

// The CVM's wg-quick configuration (§5.4): its address /32, a peer per gateway node (sorted by key),
// each allowing the node's WireGuard address alone, with a 25 s keep-alive.
std::string render_cvm_wg_config(std::string_view private_key_b64, std::uint16_t listen_port,
                                 const GatewayRegistration& registration);

}  // namespace dstack::app
