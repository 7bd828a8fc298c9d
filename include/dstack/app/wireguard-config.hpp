// The gateway's WireGuard network (spec/gateway.md §2.8, §6.2): the checks upstream makes on its
// [core.wg] addresses (same messages), the CVM address pool, and WireGuard key syntax. IPv4 only,
// as upstream. asio-free.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/wireguard-peer.hpp"

namespace dstack::app {

using net::WgPeer;

struct WgNetworkConfig {
    std::string ip_cidr = "10.0.0.1/24";                 // the gateway's address and the routed network
    std::vector<std::string> reserved_nets{"10.0.0.1/32"};  // never handed out
    std::string client_ip_range = "10.0.0.0/25";         // the CVM pool
};

// "Reserved net is not in the network", "Wg peer IP is not in the reserved net", "Client IP range
// is not in the network", or a parse error naming the value.
Result<void> validate_wg_network(const WgNetworkConfig& config);
// The lowest free address of the pool (network and broadcast excluded for prefixes below /31),
// skipping the gateway's own address and broadcast, reserved nets and `allocated` (dotted quads).
Result<std::string> allocate_wg_ip(const WgNetworkConfig& config, const std::set<std::string>& allocated);
// The same, scanning from the address after `after` (wrapping around to the pool's start): with
// many addresses taken, a caller that passes the last one it handed out gets a free one without
// rescanning the taken ones each time. `after` empty: first fit.
Result<std::string> allocate_wg_ip_after(const WgNetworkConfig& config, const std::set<std::string>& allocated,
                                         std::string_view after);
// Whether `ip` may stay a CVM's address (in the pool, not reserved, not the gateway's).
bool wg_ip_is_valid(const WgNetworkConfig& config, std::string_view ip);
// A WireGuard key: base64 of exactly 32 bytes.
Result<Bytes> parse_wg_public_key(std::string_view base64);

}  // namespace dstack::app
