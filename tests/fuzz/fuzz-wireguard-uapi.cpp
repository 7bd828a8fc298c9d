// libFuzzer target: the replies of WireGuard's configuration socket (a userspace daemon the
// gateway does not control) must never crash the parser, and whatever a parsed reply holds must
// never make the next set request anything but well-formed key=value lines.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/net/wireguard-uapi-message.hpp"

namespace {

constexpr std::string_view peer_keys[] = {"public_key", "remove", "update_only", "replace_allowed_ips", "allowed_ip",
                                          "persistent_keepalive_interval"};

// "set=1", then only the peer keys above, each line key=value with a value free of newlines,
// then the blank line that ends the request.
void check_request(const std::string& request) {
    if (request.empty()) return;
    if (request.rfind("set=1\n", 0) != 0 || request.size() < 8 || request.substr(request.size() - 2) != "\n\n") std::abort();
    std::string_view body(request);
    body = body.substr(6, body.size() - 7);  // between "set=1\n" and the final "\n"
    while (!body.empty()) {
        auto end = body.find('\n');
        if (end == std::string_view::npos || end == 0) std::abort();
        auto line = body.substr(0, end);
        body.remove_prefix(end + 1);
        auto eq = line.find('=');
        if (eq == std::string_view::npos || eq + 1 == line.size()) std::abort();
        bool known = false;
        for (auto key : peer_keys) known = known || line.substr(0, eq) == key;
        if (!known) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 1 << 20) return 0;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (dstack::net::wg_uapi_reply_length(text) > size) std::abort();
    (void)dstack::net::parse_wg_uapi_set_reply(text);
    auto status = dstack::net::parse_wg_uapi_get_reply(text);
    if (!status) return 0;
    // The device's peers as a target (each with its first address): whatever the reply said, the
    // request that follows is well-formed or refused.
    std::vector<dstack::net::WgPeer> target;
    for (const auto& peer : status->peers) {
        if (dstack::net::wg_key_base64_to_hex(peer.public_key, "peer").ok() == false) std::abort();
        target.push_back({peer.public_key, peer.allowed_ips.empty() ? std::string("10.0.0.2") : peer.allowed_ips.front()});
    }
    for (int keepalive : {0, 25}) {
        auto request = dstack::net::wg_uapi_sync_peers_request(*status, target, keepalive);
        if (request) check_request(*request);
        auto removal = dstack::net::wg_uapi_sync_peers_request(*status, {}, keepalive);
        if (!removal) std::abort();  // removing every peer always works
        check_request(*removal);
    }
    return 0;
}
