// What a server name tells the gateway: which app or instance, which port, and how (TLS
// terminated at the gateway, passed through, or terminated with HTTP/2). Upstream's grammar
// (spec gateway.md §3.5, §3.6), with every refusal named in a sentence.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dstack/base/result.hpp"

namespace dstack::app {

struct GatewayTarget {
    std::string id;  // an instance id or app id, as written (no case folding)
    std::uint16_t port = 80;
    bool tls_passthrough = false;  // 's': the client's TLS goes to the app untouched
    bool h2 = false;               // 'g': terminate with ALPN h2, relay HTTP/2 (prior knowledge)
};

// The first label of a server name under a base domain: <id>[-<spec>], spec = [<port>][s|g].
// Default port 443 with 's', else 80. Stricter than upstream: port 0 is refused (upstream takes
// any u16), a port is digits only (upstream's u16 parse also takes a leading '+').
Result<GatewayTarget> parse_gateway_label(std::string_view label);

struct ServerNameSplit {
    std::string first_label;
    std::string parent;
};

// At the first '.'; none, or an empty side ⇒ an error starting "invalid sni".
Result<ServerNameSplit> split_server_name(std::string_view server_name);

// A custom domain's TXT record "<app_id>:<port>" (spec §3.6), split at the first ':'; the port
// 1-65535. Always tls_passthrough = true.
Result<GatewayTarget> parse_app_address(std::string_view txt);

}  // namespace dstack::app
