// The gateway's WireGuard network: upstream's [core.wg] validation with its exact messages (spec
// gateway.md §2.8, config.rs test_validate), the CVM address pool (§6.2: 10.0.0.2 first, then .3),
// and WireGuard key syntax (main_service/tests.rs).
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "dstack/app/wireguard-config.hpp"

using namespace dstack;
using namespace dstack::app;

namespace {

WgNetworkConfig network(std::string ip, std::vector<std::string> reserved, std::string range) {
    WgNetworkConfig config;
    config.ip_cidr = std::move(ip);
    config.reserved_nets = std::move(reserved);
    config.client_ip_range = std::move(range);
    return config;
}

std::string validation_error(const WgNetworkConfig& config) {
    auto result = validate_wg_network(config);
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

std::string allocate(const WgNetworkConfig& config, const std::set<std::string>& taken = {}) {
    auto ip = allocate_wg_ip(config, taken);
    REQUIRE_MESSAGE(ip.ok(), ip.error().message);
    return *ip;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("wireguard config: upstream's four validation cases, same messages") {
    CHECK(validate_wg_network(network("10.1.2.3/24", {"10.1.2.0/30"}, "10.1.2.128/25")).ok());
    CHECK(validation_error(network("10.2.0.1/24", {"10.1.0.0/16"}, "10.2.0.128/25")) == "Reserved net is not in the network");
    CHECK(validation_error(network("10.1.2.16/24", {"10.1.2.0/30"}, "10.1.2.128/25")) == "Wg peer IP is not in the reserved net");
    CHECK(validation_error(network("10.1.2.3/24", {"10.1.2.0/30"}, "10.1.3.128/25")) == "Client IP range is not in the network");
    // The defaults are valid.
    CHECK(validate_wg_network(WgNetworkConfig{}).ok());
}

TEST_CASE("wireguard config: validation edge cases") {
    // A reserved net as large as the network itself is inside it; one larger is not.
    CHECK(validate_wg_network(network("10.0.0.1/24", {"10.0.0.0/24"}, "10.0.0.0/25")).ok());
    CHECK(validation_error(network("10.0.0.1/24", {"10.0.0.0/23"}, "10.0.0.0/25")) == "Reserved net is not in the network");
    // The gateway's address may be in any one of several reserved nets; every one must be inside.
    CHECK(validate_wg_network(network("10.0.0.1/24", {"10.0.0.200/29", "10.0.0.1/32"}, "10.0.0.0/25")).ok());
    CHECK(validation_error(network("10.0.0.1/24", {"10.0.0.1/32", "10.0.1.0/30"}, "10.0.0.0/25")) ==
          "Reserved net is not in the network");
    // No reserved net at all: the gateway's address is in none.
    CHECK(validation_error(network("10.0.0.1/24", {}, "10.0.0.0/25")) == "Wg peer IP is not in the reserved net");
    // A pool wider than the network (upstream compares networks, not addresses).
    CHECK(validation_error(network("10.0.0.1/24", {"10.0.0.1/32"}, "10.0.0.0/23")) == "Client IP range is not in the network");
    // A /16 cluster network with this node's /18 pool (cluster doc §2.2).
    CHECK(validate_wg_network(network("10.4.0.1/16", {"10.4.0.0/24"}, "10.4.64.0/18")).ok());
}

TEST_CASE("wireguard config: unparsable values are refused with the value named") {
    for (const auto& [config, bad] : std::vector<std::pair<WgNetworkConfig, std::string>>{
             {network("10.0.0.1/33", {"10.0.0.1/32"}, "10.0.0.0/25"), "10.0.0.1/33"},
             {network("10.0.0.256/24", {"10.0.0.1/32"}, "10.0.0.0/25"), "10.0.0.256"},
             {network("10.0.0.1/24", {"10.0.0.1/x"}, "10.0.0.0/25"), "10.0.0.1/x"},
             {network("10.0.0.1/24", {"10.0.0.1/32"}, "10.0.0/25"), "10.0.0"},
             {network("10.0.0.1/24", {"10.0.0.1/32"}, "10.0.0.0.0/25"), "10.0.0.0.0"},
             {network("10.0.0.1/24", {"10.0.0.1/32"}, "10.0.0.0/"), "10.0.0.0/"},
             {network("10.0.0.1/24", {"10.0.0.1/32"}, "1000.0.0.0/8"), "1000.0.0.0"},
             {network("10.0.0.1/24", {"10.0.0.1/32"}, "fd00::/64"), "fd00::"},
             {network(" 10.0.0.1/24", {"10.0.0.1/32"}, "10.0.0.0/25"), " 10.0.0.1"},
             {network("", {"10.0.0.1/32"}, "10.0.0.0/25"), "\"\""},
         }) {
        CAPTURE(bad);
        auto message = validation_error(config);
        CHECK(contains(message, bad));
        CHECK(contains(message, "IPv4"));
        CHECK_FALSE(allocate_wg_ip(config, {}).ok());
    }
}

TEST_CASE("wireguard config: the defaults hand out 10.0.0.2, then 10.0.0.3 (upstream's snapshots)") {
    WgNetworkConfig config;
    CHECK(allocate(config) == "10.0.0.2");
    CHECK(allocate(config, {"10.0.0.2"}) == "10.0.0.3");
    // A freed address is reused at once (no delay after recycle), lowest first.
    CHECK(allocate(config, {"10.0.0.3"}) == "10.0.0.2");
    CHECK(allocate(config, {"10.0.0.2", "10.0.0.3", "10.0.0.5"}) == "10.0.0.4");
}

TEST_CASE("wireguard config: network and broadcast of the pool are never handed out below /31") {
    // Pool 10.0.0.128/25 inside 10.0.0.1/24: .128 is the pool's network, .255 its broadcast (and
    // the gateway network's broadcast too).
    auto config = network("10.0.0.1/24", {"10.0.0.1/32"}, "10.0.0.128/25");
    CHECK(allocate(config) == "10.0.0.129");
    std::set<std::string> taken;
    for (int i = 129; i <= 253; ++i) taken.insert("10.0.0." + std::to_string(i));
    CHECK(allocate(config, taken) == "10.0.0.254");
    taken.insert("10.0.0.254");
    auto exhausted = allocate_wg_ip(config, taken);
    REQUIRE_FALSE(exhausted.ok());
    CHECK(exhausted.error().message == "IP pool exhausted: every address of 10.0.0.128/25 is taken");
    CHECK_FALSE(wg_ip_is_valid(config, "10.0.0.128"));
    CHECK_FALSE(wg_ip_is_valid(config, "10.0.0.255"));
    CHECK(wg_ip_is_valid(config, "10.0.0.129"));
    CHECK(wg_ip_is_valid(config, "10.0.0.254"));
}

TEST_CASE("wireguard config: /31 and /32 pools use every address (ipnet's hosts())") {
    auto slash31 = network("10.0.0.1/24", {"10.0.0.1/32"}, "10.0.0.8/31");
    CHECK(allocate(slash31) == "10.0.0.8");
    CHECK(allocate(slash31, {"10.0.0.8"}) == "10.0.0.9");
    CHECK_FALSE(allocate_wg_ip(slash31, {"10.0.0.8", "10.0.0.9"}).ok());
    auto slash32 = network("10.0.0.1/24", {"10.0.0.1/32"}, "10.0.0.7/32");
    CHECK(allocate(slash32) == "10.0.0.7");
    CHECK_FALSE(allocate_wg_ip(slash32, {"10.0.0.7"}).ok());
}

TEST_CASE("wireguard config: the gateway's own address and its network's broadcast are skipped") {
    // The gateway sits at .2 of a pool that covers the whole /24 and reserves a net elsewhere.
    auto config = network("10.0.0.2/24", {"10.0.0.0/30"}, "10.0.0.0/24");
    REQUIRE(validate_wg_network(config).ok());
    // .0 is network, .1-.3 reserved (and .2 the gateway): .4 first.
    CHECK(allocate(config) == "10.0.0.4");
    CHECK_FALSE(wg_ip_is_valid(config, "10.0.0.2"));
    // The gateway's address outside any reserved net is still skipped (validation would refuse
    // such a config; the pool code does not rely on it).
    auto unreserved = network("10.0.0.5/24", {"10.0.0.1/32"}, "10.0.0.0/29");
    CHECK(allocate(unreserved, {"10.0.0.2", "10.0.0.3", "10.0.0.4"}) == "10.0.0.6");
    CHECK_FALSE(wg_ip_is_valid(unreserved, "10.0.0.5"));
    // A /31 pool (both addresses are hosts) at the top of a /25 gateway network: .127 is that
    // network's broadcast and is skipped.
    auto broadcast = network("10.0.0.1/25", {"10.0.0.1/32"}, "10.0.0.126/31");
    REQUIRE(validate_wg_network(broadcast).ok());
    CHECK(allocate(broadcast) == "10.0.0.126");
    CHECK_FALSE(allocate_wg_ip(broadcast, {"10.0.0.126"}).ok());
    CHECK_FALSE(wg_ip_is_valid(broadcast, "10.0.0.127"));
}

TEST_CASE("wireguard config: reserved nets are skipped") {
    auto config = network("10.0.0.1/24", {"10.0.0.1/32", "10.0.0.2/31", "10.0.0.8/30"}, "10.0.0.0/25");
    CHECK(allocate(config) == "10.0.0.4");
    CHECK(allocate(config, {"10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"}) == "10.0.0.12");
    for (const char* ip : {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.8", "10.0.0.11"}) {
        CAPTURE(ip);
        CHECK_FALSE(wg_ip_is_valid(config, ip));
    }
}

TEST_CASE("wireguard config: wg_ip_is_valid refuses what is outside the pool or not an address") {
    WgNetworkConfig config;
    CHECK(wg_ip_is_valid(config, "10.0.0.2"));
    CHECK(wg_ip_is_valid(config, "10.0.0.126"));
    CHECK_FALSE(wg_ip_is_valid(config, "10.0.0.127"));  // the pool's broadcast
    CHECK_FALSE(wg_ip_is_valid(config, "10.0.0.128"));  // in the network, not in the pool
    CHECK_FALSE(wg_ip_is_valid(config, "10.0.1.2"));
    CHECK_FALSE(wg_ip_is_valid(config, "10.0.0.1"));
    CHECK_FALSE(wg_ip_is_valid(config, "10.0.0.0"));
    for (const char* bad : {"", "10.0.0.2/32", "10.0.0.02 ", "10.0.0", "10.0.0.2.1", "10.0.0.x", "::1", "10.0.0.1234"}) {
        CAPTURE(bad);
        CHECK_FALSE(wg_ip_is_valid(config, bad));
    }
    // A broken network makes every address invalid rather than every address valid.
    CHECK_FALSE(wg_ip_is_valid(network("x", {"10.0.0.1/32"}, "10.0.0.0/25"), "10.0.0.2"));
}

TEST_CASE("wireguard config: a large pool is scanned in bounded time and allocation is exact") {
    auto config = network("10.4.0.1/16", {"10.4.0.0/24"}, "10.4.0.0/16");
    std::set<std::string> taken;
    for (int i = 1; i <= 255; ++i) taken.insert("10.4.1." + std::to_string(i));
    CHECK(allocate(config) == "10.4.1.0");  // past the reserved /24; .0 of a /24 is a host in a /16
    CHECK(allocate(config, taken) == "10.4.1.0");
    taken.insert("10.4.1.0");
    CHECK(allocate(config, taken) == "10.4.2.0");
}

TEST_CASE("wireguard config: public keys as upstream checks them") {
    auto zero = parse_wg_public_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    REQUIRE_MESSAGE(zero.ok(), zero.error().message);
    CHECK(zero->size() == 32);
    auto real = parse_wg_public_key("0dbIi1iSrcUPYgtUrOb3ZpNZ+pH7CDC19hUQH3BgCXE=");  // from `wg pubkey`
    REQUIRE(real.ok());
    CHECK((*real)[0] == 0xd1);
    CHECK((*real)[31] == 0x71);
    for (const char* bad : {"not-a-wireguard-key", "AQID", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  // 34 bytes
                            "0dbIi1iSrcUPYgtUrOb3ZpNZ+pH7CDC19hUQH3BgCXF=",  // bits in the padding remainder
                            "0dbIi1iSrcUPYgtUrOb3ZpNZ-pH7CDC19hUQH3BgCXE=",  // base64url
                            " 0dbIi1iSrcUPYgtUrOb3ZpNZ+pH7CDC19hUQH3BgCXE=", "0dbIi1iSrcUPYgtUrOb3ZpNZ+pH7CDC19hUQH3BgCXE=\n"}) {
        CAPTURE(bad);
        auto key = parse_wg_public_key(bad);
        REQUIRE_FALSE(key.ok());
        CHECK(contains(key.error().message, "44 characters"));
    }
}
