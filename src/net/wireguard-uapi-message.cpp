#include "dstack/net/wireguard-uapi-message.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include <fmt/format.h>

#include "dstack/base/base64.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/x25519.hpp"

namespace dstack::net {
namespace {

template <typename T>
Result<T> number(std::string_view text, std::string_view what) {
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return make_error("WireGuard UAPI: {} {:?} is not a number", what, std::string(text));
    return value;
}

// A run of 1 to `max_digits` decimal digits at `text`'s start, at most `max`; -1 otherwise.
int decimal(std::string_view& text, std::size_t max_digits, int max) {
    int value = 0;
    std::size_t digits = 0;
    while (digits < text.size() && digits < max_digits && text[digits] >= '0' && text[digits] <= '9') {
        value = value * 10 + (text[digits] - '0');
        ++digits;
    }
    if (digits == 0 || value > max) return -1;
    text.remove_prefix(digits);
    return value;
}

// "10.0.0.2" → "10.0.0.2/32"; "a.b.c.d/N" → the network in canonical form (host bits cleared,
// as the device reports it, so that an unchanged peer compares equal). IPv4 only, parsed in full:
// the text goes into a line-oriented request, so anything else (a newline above all) is refused.
Result<std::string> allowed_ip_text(std::string_view ip) {
    auto refuse = [&] { return make_error("WireGuard peer address {:?} is not IPv4 (a.b.c.d or a.b.c.d/N)", std::string(ip)); };
    std::string_view rest = ip;
    std::uint32_t address = 0;
    for (int i = 0; i < 4; ++i) {
        if (i > 0) {
            if (rest.empty() || rest.front() != '.') return refuse();
            rest.remove_prefix(1);
        }
        int octet = decimal(rest, 3, 255);
        if (octet < 0) return refuse();
        address = (address << 8) | static_cast<std::uint32_t>(octet);
    }
    int prefix = 32;
    if (!rest.empty()) {
        if (rest.front() != '/') return refuse();
        rest.remove_prefix(1);
        prefix = decimal(rest, 2, 32);
        if (prefix < 0 || !rest.empty()) return refuse();
    }
    std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t(0) << (32 - prefix);
    address &= mask;
    return fmt::format("{}.{}.{}.{}/{}", address >> 24, (address >> 16) & 255, (address >> 8) & 255, address & 255, prefix);
}

}  // namespace

Result<std::string> wg_key_base64_to_hex(std::string_view base64, std::string_view what) {
    auto bytes = base64_decode(base64);
    if (!bytes || bytes->size() != 32) return make_error("{}: not a WireGuard key (32 bytes of base64)", what);
    return hex_encode(*bytes);
}

Result<std::string> wg_key_hex_to_base64(std::string_view hex, std::string_view what) {
    auto bytes = hex_decode(hex);
    if (!bytes || bytes->size() != 32) return make_error("{}: not a WireGuard key (64 hex digits)", what);
    return base64_encode(*bytes);
}

Result<std::string> wg_uapi_set_interface_request(std::string_view private_key_b64, std::uint16_t listen_port) {
    DSTACK_TRY(auto key, wg_key_base64_to_hex(private_key_b64, "private key"));
    return fmt::format("set=1\nprivate_key={}\nlisten_port={}\n\n", key, listen_port);
}

Result<std::string> wg_uapi_sync_peers_request(const WgDeviceStatus& current, std::span<const WgPeer> target,
                                               int persistent_keepalive) {
    if (persistent_keepalive < 0 || persistent_keepalive > 65535) return make_error("keepalive {} is not 0 to 65535", persistent_keepalive);
    std::map<std::string, std::string> wanted;  // base64 key -> allowed ip
    std::set<std::string> addresses;
    for (const auto& peer : target) {
        DSTACK_TRY(auto hex, wg_key_base64_to_hex(peer.public_key, "peer key"));
        (void)hex;
        DSTACK_TRY(auto ip, allowed_ip_text(peer.allowed_ip));
        if (!wanted.emplace(peer.public_key, ip).second) return make_error("WireGuard peer {} given twice", peer.public_key);
        if (!addresses.insert(ip).second) return make_error("WireGuard address {} given to two peers", ip);
    }
    std::string out;
    std::set<std::string> present;
    for (const auto& peer : current.peers) {
        present.insert(peer.public_key);
        auto it = wanted.find(peer.public_key);
        DSTACK_TRY(auto hex, wg_key_base64_to_hex(peer.public_key, "device peer key"));
        if (it == wanted.end()) {
            out += fmt::format("public_key={}\nremove=true\n", hex);
            continue;
        }
        bool same = peer.allowed_ips.size() == 1 && peer.allowed_ips.front() == it->second &&
                    peer.persistent_keepalive == persistent_keepalive;
        if (same) continue;
        out += fmt::format("public_key={}\nupdate_only=true\nreplace_allowed_ips=true\nallowed_ip={}\n"
                           "persistent_keepalive_interval={}\n",
                           hex, it->second, persistent_keepalive);
    }
    for (const auto& [key, ip] : wanted) {
        if (present.count(key)) continue;
        DSTACK_TRY(auto hex, wg_key_base64_to_hex(key, "peer key"));
        out += fmt::format("public_key={}\nreplace_allowed_ips=true\nallowed_ip={}\npersistent_keepalive_interval={}\n", hex, ip,
                           persistent_keepalive);
    }
    if (out.empty()) return out;
    return "set=1\n" + out + "\n";
}

std::size_t wg_uapi_reply_length(std::string_view buffer) {
    if (buffer.substr(0, 1) == "\n") return 1;
    auto end = buffer.find("\n\n");
    return end == std::string_view::npos ? 0 : end + 2;
}

Result<WgDeviceStatus> parse_wg_uapi_get_reply(std::string_view reply) {
    if (reply.size() > wg_uapi_max_reply_bytes) return make_error("WireGuard UAPI: reply over {} bytes", wg_uapi_max_reply_bytes);
    WgDeviceStatus status;
    WgPeerStatus* peer = nullptr;
    bool saw_errno = false;
    std::size_t pos = 0;
    bool ended = false;
    while (pos < reply.size()) {
        auto end = reply.find('\n', pos);
        if (end == std::string_view::npos) break;
        auto line = reply.substr(pos, end - pos);
        pos = end + 1;
        if (line.empty()) {
            ended = true;
            break;
        }
        auto eq = line.find('=');
        if (eq == std::string_view::npos) return make_error("WireGuard UAPI: line {:?} is not key=value", std::string(line.substr(0, 64)));
        auto key = line.substr(0, eq), value = line.substr(eq + 1);
        if (key == "errno") {
            DSTACK_TRY(auto code, number<int>(value, "errno"));
            if (code != 0) return make_error("WireGuard UAPI get: errno={}", code);
            saw_errno = true;
        } else if (key == "private_key") {
            auto secret = hex_decode(value);
            if (!secret || secret->size() != 32) return make_error("WireGuard UAPI: private_key is not 32 bytes");
            bool zero = std::all_of(secret->begin(), secret->end(), [](std::uint8_t b) { return b == 0; });
            if (!zero) {
                auto derived = crypto::x25519_public_key(*secret);
                std::fill(secret->begin(), secret->end(), 0);
                if (!derived) return derived.error().context("WireGuard UAPI private_key");
                status.public_key = base64_encode(*derived);
            }
        } else if (key == "listen_port") {
            DSTACK_TRY(status.listen_port, number<std::uint16_t>(value, "listen_port"));
        } else if (key == "public_key") {
            status.peers.emplace_back();
            peer = &status.peers.back();
            DSTACK_TRY(peer->public_key, wg_key_hex_to_base64(value, "peer public_key"));
        } else if (peer == nullptr) {
            continue;  // fwmark and other device keys
        } else if (key == "endpoint") {
            peer->endpoint = std::string(value);
        } else if (key == "last_handshake_time_sec") {
            DSTACK_TRY(peer->last_handshake_sec, number<std::int64_t>(value, key));
        } else if (key == "rx_bytes") {
            DSTACK_TRY(peer->rx_bytes, number<std::uint64_t>(value, key));
        } else if (key == "tx_bytes") {
            DSTACK_TRY(peer->tx_bytes, number<std::uint64_t>(value, key));
        } else if (key == "persistent_keepalive_interval") {
            DSTACK_TRY(peer->persistent_keepalive, number<std::uint16_t>(value, key));
        } else if (key == "allowed_ip") {
            peer->allowed_ips.emplace_back(value);
        }
    }
    // A reply cut short (the device died mid-answer) must not read as a device with fewer peers.
    if (!ended) return make_error("WireGuard UAPI: reply does not end with a blank line");
    if (!saw_errno) return make_error("WireGuard UAPI: get reply without errno");
    return status;
}

Result<void> parse_wg_uapi_set_reply(std::string_view reply) {
    constexpr std::string_view prefix = "errno=";
    if (reply.substr(0, prefix.size()) != prefix) return make_error("WireGuard UAPI set: unexpected reply {:?}", std::string(reply.substr(0, 64)));
    auto end = reply.find('\n');
    DSTACK_TRY(auto code, number<int>(reply.substr(prefix.size(), end - prefix.size()), "errno"));
    if (code != 0) return make_error("WireGuard UAPI set: errno={} (the device refused the configuration)", code);
    return {};
}

}  // namespace dstack::net
