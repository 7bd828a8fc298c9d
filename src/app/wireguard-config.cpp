#include "dstack/app/wireguard-config.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>

#include <fmt/format.h>

#include "dstack/base/base64.hpp"

namespace dstack::app {
namespace {

struct Net {
    std::uint32_t address = 0;  // host order
    int prefix = 32;
    std::uint32_t mask() const { return prefix == 0 ? 0 : ~std::uint32_t(0) << (32 - prefix); }
    std::uint32_t network() const { return address & mask(); }
    std::uint32_t broadcast() const { return network() | ~mask(); }
    bool contains(std::uint32_t ip) const { return (ip & mask()) == network(); }
    bool contains(const Net& other) const { return other.prefix >= prefix && contains(other.network()); }
};

Result<std::uint32_t> parse_ipv4(std::string_view text) {
    std::uint32_t out = 0;
    const char* p = text.data();
    const char* end = text.data() + text.size();
    for (int i = 0; i < 4; ++i) {
        unsigned part = 0;
        auto [next, ec] = std::from_chars(p, end, part);
        if (ec != std::errc() || next == p || part > 255 || next - p > 3) return make_error("{:?} is not an IPv4 address", std::string(text));
        out = (out << 8) | part;
        p = next;
        if (i < 3) {
            if (p == end || *p != '.') return make_error("{:?} is not an IPv4 address", std::string(text));
            ++p;
        }
    }
    if (p != end) return make_error("{:?} is not an IPv4 address", std::string(text));
    return out;
}

Result<Net> parse_net(std::string_view text) {
    Net net;
    auto slash = text.find('/');
    DSTACK_TRY(net.address, parse_ipv4(text.substr(0, slash)));
    if (slash != std::string_view::npos) {
        auto digits = text.substr(slash + 1);
        int prefix = -1;
        auto [next, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (ec != std::errc() || next != digits.data() + digits.size() || prefix < 0 || prefix > 32)
            return make_error("{:?} is not an IPv4 network (a.b.c.d/N)", std::string(text));
        net.prefix = prefix;
    }
    return net;
}

std::string dotted(std::uint32_t ip) {
    return fmt::format("{}.{}.{}.{}", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

struct Parsed {
    Net gateway;
    std::vector<Net> reserved;
    Net pool;
};

Result<Parsed> parse(const WgNetworkConfig& config) {
    Parsed out;
    DSTACK_TRY(out.gateway, parse_net(config.ip_cidr));
    for (const auto& text : config.reserved_nets) {
        DSTACK_TRY(auto net, parse_net(text));
        out.reserved.push_back(net);
    }
    DSTACK_TRY(out.pool, parse_net(config.client_ip_range));
    return out;
}

bool usable(const Parsed& p, std::uint32_t ip) {
    if (!p.pool.contains(ip)) return false;
    if (p.pool.prefix < 31 && (ip == p.pool.network() || ip == p.pool.broadcast())) return false;
    if (ip == p.gateway.broadcast() || ip == p.gateway.address) return false;
    for (const auto& net : p.reserved) {
        if (net.contains(ip)) return false;
    }
    return true;
}

}  // namespace

Result<void> validate_wg_network(const WgNetworkConfig& config) {
    DSTACK_TRY(auto p, parse(config));
    Net network{p.gateway.network(), p.gateway.prefix};
    for (const auto& net : p.reserved) {
        if (!network.contains(net)) return make_error("Reserved net is not in the network");
    }
    bool reserved = false;
    for (const auto& net : p.reserved) reserved = reserved || net.contains(p.gateway.address);
    if (!reserved) return make_error("Wg peer IP is not in the reserved net");
    if (!network.contains(p.pool)) return make_error("Client IP range is not in the network");
    return {};
}

Result<std::string> allocate_wg_ip(const WgNetworkConfig& config, const std::set<std::string>& allocated) {
    DSTACK_TRY(auto p, parse(config));
    std::uint64_t first = p.pool.network(), last = p.pool.broadcast();
    for (std::uint64_t ip = first; ip <= last; ++ip) {
        auto candidate = static_cast<std::uint32_t>(ip);
        if (!usable(p, candidate)) continue;
        std::string text = dotted(candidate);
        if (allocated.count(text) == 0) return text;
    }
    return make_error("IP pool exhausted: every address of {} is taken", config.client_ip_range);
}

bool wg_ip_is_valid(const WgNetworkConfig& config, std::string_view ip) {
    auto p = parse(config);
    auto address = parse_ipv4(ip);
    return p && address && usable(*p, *address);
}

Result<Bytes> parse_wg_public_key(std::string_view text) {
    auto bytes = base64_decode(text);
    if (!bytes || bytes->size() != 32 || text.size() != 44) {
        return make_error("invalid WireGuard public key: expected 32 bytes of base64 (44 characters)");
    }
    return std::move(*bytes);
}

Result<std::string> allocate_wg_ip_after(const WgNetworkConfig& config, const std::set<std::string>& allocated,
                                         std::string_view after) {
    if (after.empty()) return allocate_wg_ip(config, allocated);
    DSTACK_TRY(auto p, parse(config));
    auto start = parse_ipv4(after);
    if (!start || !p.pool.contains(*start)) return allocate_wg_ip(config, allocated);
    std::uint64_t first = p.pool.network(), last = p.pool.broadcast(), size = last - first + 1;
    for (std::uint64_t step = 1; step <= size; ++step) {
        auto candidate = static_cast<std::uint32_t>(first + (*start - first + step) % size);
        if (!usable(p, candidate)) continue;
        std::string text = dotted(candidate);
        if (allocated.count(text) == 0) return text;
    }
    return make_error("IP pool exhausted: every address of {} is taken", config.client_ip_range);
}

}  // namespace dstack::app
