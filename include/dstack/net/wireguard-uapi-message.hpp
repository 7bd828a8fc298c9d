// The text of WireGuard's cross-platform configuration protocol (wireguard.com/xplatform): what
// the gateway writes to a userspace implementation's unix socket (wireguard-go) and how its
// answers read. Asio-free, so the reply parser can be fuzzed. Keys travel as lowercase hex on this
// protocol and as base64 everywhere else; these functions convert.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/result.hpp"
#include "dstack/net/wireguard-peer.hpp"

namespace dstack::net {

struct WgPeerStatus {
    std::string public_key;                // base64
    std::vector<std::string> allowed_ips;  // "10.0.0.2/32", as the device reports them
    std::string endpoint;                  // "192.0.2.1:51820", empty when none is known yet
    std::int64_t last_handshake_sec = 0;   // unix time; 0 = never
    std::uint64_t rx_bytes = 0, tx_bytes = 0;
    std::uint16_t persistent_keepalive = 0;  // seconds; 0 = off
};

struct WgDeviceStatus {
    std::string public_key;  // base64, derived from the device's private key; empty when it has none
    std::uint16_t listen_port = 0;
    std::vector<WgPeerStatus> peers;
};

// A get reply is about 350 bytes a peer: this bounds one at ~90,000 peers (a /16 pool fits).
inline constexpr std::size_t wg_uapi_max_reply_bytes = 32 * 1024 * 1024;

// base64 (32 bytes) <-> the protocol's 64 lowercase hex digits. Errors name the key's role.
Result<std::string> wg_key_base64_to_hex(std::string_view base64, std::string_view what);
Result<std::string> wg_key_hex_to_base64(std::string_view hex, std::string_view what);

// "set=1" with the device's private key and listen port.
Result<std::string> wg_uapi_set_interface_request(std::string_view private_key_b64, std::uint16_t listen_port);

// The "set=1" request that turns the device's peers (`current`, from a get) into exactly `target`
// without replace_peers: peers that are gone are removed, new or changed ones (allowed IPs,
// keepalive) are written, and peers that stay as they are do not appear at all, so their sessions
// and counters are untouched. Empty when nothing changes. Refuses, before anything is sent, a key
// that is not 32 bytes of base64, an address that is not IPv4, a key or an address given twice,
// and a keepalive outside 0..65535.
Result<std::string> wg_uapi_sync_peers_request(const WgDeviceStatus& current, std::span<const WgPeer> target,
                                               int persistent_keepalive);

// Parses a complete get reply (up to and including its blank line). The private key it carries
// is used only to derive the public key and is wiped.
Result<WgDeviceStatus> parse_wg_uapi_get_reply(std::string_view reply);
// A set reply: "errno=0" and the blank line; any other errno is an error with the number.
Result<void> parse_wg_uapi_set_reply(std::string_view reply);

// The length of the reply in `buffer` (through the blank line that ends it), 0 while incomplete.
std::size_t wg_uapi_reply_length(std::string_view buffer);

}  // namespace dstack::net
