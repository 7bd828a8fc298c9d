// WireGuard's cross-platform configuration protocol (wireguard.com/xplatform): the get reply
// parser against a reply captured from Debian's wireguard-go 0.0.20230223 (three peers, one with a
// completed handshake), checked field by field against `wg show <if> dump` of the same device; and
// the set requests the gateway writes (a peer sync that leaves unchanged peers out, so their
// sessions survive).
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "dstack/net/wireguard-uapi-message.hpp"

using namespace dstack;
using namespace dstack::net;

namespace {

// `printf 'get=1\n\n' | socat - UNIX:/var/run/wireguard/wgtest0.sock` for a wireguard-go device
// set up with `wg set wgtest0 private-key dev.key listen-port 51999 fwmark 0x1234 peer P1
// allowed-ips 10.0.0.2/32 persistent-keepalive 25 endpoint 127.0.0.1:51001 peer P2 allowed-ips
// 10.0.0.3/32,10.1.0.0/16 peer P3 allowed-ips 10.0.0.4/32,fd00::4/128 endpoint [::1]:51003`, P1
// being a second wireguard-go in the same network namespace that completed a handshake. The keys
// were made for this capture only.
constexpr std::string_view captured_get_reply =
    "private_key=e0a2f9aae01c324d8f0dd1ad4567b88081b64a61acbcef25fbc73c6df64cf960\n"
    "listen_port=51999\n"
    "fwmark=4660\n"
    "public_key=d1d6c88b5892adc50f620b54ace6f7669359fa91fb0830b5f615101f70600971\n"
    "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
    "protocol_version=1\n"
    "endpoint=127.0.0.1:51001\n"
    "last_handshake_time_sec=1796319489\n"
    "last_handshake_time_nsec=917638855\n"
    "tx_bytes=1308\n"
    "rx_bytes=340\n"
    "persistent_keepalive_interval=25\n"
    "allowed_ip=10.0.0.2/32\n"
    "public_key=149ab7cea4f0c0cf2f3e3ef07d1b56bf3639665f5a12d472363a2ae6a9146b3d\n"
    "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
    "protocol_version=1\n"
    "last_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\n"
    "tx_bytes=0\n"
    "rx_bytes=0\n"
    "persistent_keepalive_interval=0\n"
    "allowed_ip=10.0.0.3/32\n"
    "allowed_ip=10.1.0.0/16\n"
    "public_key=26c8bb244a495c8f87fc979297b46e0cf74c4bfab350b82c0ae97e357c122944\n"
    "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
    "protocol_version=1\n"
    "endpoint=[::1]:51003\n"
    "last_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\n"
    "tx_bytes=1332\n"
    "rx_bytes=0\n"
    "persistent_keepalive_interval=0\n"
    "allowed_ip=10.0.0.4/32\n"
    "allowed_ip=fd00::4/128\n"
    "errno=0\n"
    "\n";

// `wg show wgtest0 dump` right after that get (wireguard-tools 1.0.20210914): the interface line
// (private key, public key, port, fwmark), then one line a peer (key, preshared key, endpoint,
// allowed IPs, latest handshake, rx, tx, keepalive), in wg's own order.
constexpr std::string_view captured_dump =
    "4KL5quAcMk2PDdGtRWe4gIG2SmGsvO8l+8c8bfZM+WA=\tskGEa2g0U4FXzuKdpQZ3K0K9KFykHA0jURD+M6101Hg=\t51999\t0x1234\n"
    "Jsi7JEpJXI+H/JeSl7RuDPdMS/qzULgsCul+NXwSKUQ=\t(none)\t[::1]:51003\t10.0.0.4/32,fd00::4/128\t0\t0\t1332\toff\n"
    "0dbIi1iSrcUPYgtUrOb3ZpNZ+pH7CDC19hUQH3BgCXE=\t(none)\t127.0.0.1:51001\t10.0.0.2/32\t1796319489\t340\t1308\t25\n"
    "FJq3zqTwwM8vPj7wfRtWvzY5Zl9aEtRyNjoq5qkUaz0=\t(none)\t(none)\t10.0.0.3/32,10.1.0.0/16\t0\t0\t0\toff\n";

const std::string p1 = "0dbIi1iSrcUPYgtUrOb3ZpNZ+pH7CDC19hUQH3BgCXE=";
const std::string p1_hex = "d1d6c88b5892adc50f620b54ace6f7669359fa91fb0830b5f615101f70600971";
const std::string p2 = "FJq3zqTwwM8vPj7wfRtWvzY5Zl9aEtRyNjoq5qkUaz0=";
const std::string p2_hex = "149ab7cea4f0c0cf2f3e3ef07d1b56bf3639665f5a12d472363a2ae6a9146b3d";
const std::string p3 = "Jsi7JEpJXI+H/JeSl7RuDPdMS/qzULgsCul+NXwSKUQ=";
const std::string p3_hex = "26c8bb244a495c8f87fc979297b46e0cf74c4bfab350b82c0ae97e357c122944";
const std::string p4 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";  // bytes 1..32
const std::string p4_hex = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

std::vector<std::string> split(std::string_view text, char separator) {
    std::vector<std::string> out;
    std::string part;
    std::istringstream in{std::string(text)};
    while (std::getline(in, part, separator)) out.push_back(part);
    return out;
}

WgDeviceStatus captured() {
    auto status = parse_wg_uapi_get_reply(captured_get_reply);
    REQUIRE_MESSAGE(status.ok(), status.error().message);
    return *status;
}

std::string sync(const WgDeviceStatus& current, const std::vector<WgPeer>& target, int keepalive = 25) {
    auto request = wg_uapi_sync_peers_request(current, target, keepalive);
    REQUIRE_MESSAGE(request.ok(), request.error().message);
    return *request;
}

std::string sync_error(const WgDeviceStatus& current, const std::vector<WgPeer>& target, int keepalive = 25) {
    auto request = wg_uapi_sync_peers_request(current, target, keepalive);
    REQUIRE_FALSE(request.ok());
    return request.error().message;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("wireguard uapi: a real wireguard-go get reply parses") {
    auto status = captured();
    CHECK(status.listen_port == 51999);
    CHECK(status.public_key == "skGEa2g0U4FXzuKdpQZ3K0K9KFykHA0jURD+M6101Hg=");  // `wg pubkey < dev.key`
    REQUIRE(status.peers.size() == 3);
    const auto& first = status.peers[0];
    CHECK(first.public_key == p1);
    CHECK(first.endpoint == "127.0.0.1:51001");
    CHECK(first.last_handshake_sec == 1796319489);
    CHECK(first.rx_bytes == 340);
    CHECK(first.tx_bytes == 1308);
    CHECK(first.persistent_keepalive == 25);
    CHECK(first.allowed_ips == std::vector<std::string>{"10.0.0.2/32"});
    CHECK(status.peers[1].endpoint.empty());
    CHECK(status.peers[1].allowed_ips == std::vector<std::string>{"10.0.0.3/32", "10.1.0.0/16"});
    CHECK(status.peers[2].endpoint == "[::1]:51003");
    CHECK(status.peers[2].allowed_ips == std::vector<std::string>{"10.0.0.4/32", "fd00::4/128"});
}

TEST_CASE("wireguard uapi: the parse agrees with `wg show dump` of the same device, field by field") {
    auto status = captured();
    auto lines = split(captured_dump, '\n');
    REQUIRE(lines.size() == 4);
    auto interface = split(lines[0], '\t');
    REQUIRE(interface.size() == 4);
    CHECK(status.public_key == interface[1]);
    CHECK(std::to_string(status.listen_port) == interface[2]);
    REQUIRE(status.peers.size() == lines.size() - 1);
    for (std::size_t i = 1; i < lines.size(); ++i) {
        auto fields = split(lines[i], '\t');
        REQUIRE(fields.size() == 8);
        CAPTURE(fields[0]);
        const WgPeerStatus* peer = nullptr;
        for (const auto& p : status.peers) {
            if (p.public_key == fields[0]) peer = &p;
        }
        REQUIRE(peer != nullptr);
        CHECK((peer->endpoint.empty() ? "(none)" : peer->endpoint) == fields[2]);
        std::string allowed;
        for (const auto& ip : peer->allowed_ips) allowed += (allowed.empty() ? "" : ",") + ip;
        CHECK(allowed == fields[3]);
        CHECK(std::to_string(peer->last_handshake_sec) == fields[4]);
        CHECK(std::to_string(peer->rx_bytes) == fields[5]);
        CHECK(std::to_string(peer->tx_bytes) == fields[6]);
        CHECK((peer->persistent_keepalive == 0 ? "off" : std::to_string(peer->persistent_keepalive)) == fields[7]);
    }
}

TEST_CASE("wireguard uapi: a fresh device's reply (no key, no peers) and error replies") {
    // A wireguard-go device just started: a random port, no private key, no peers.
    auto fresh = parse_wg_uapi_get_reply("listen_port=51095\nerrno=0\n\n");
    REQUIRE_MESSAGE(fresh.ok(), fresh.error().message);
    CHECK(fresh->listen_port == 51095);
    CHECK(fresh->public_key.empty());
    CHECK(fresh->peers.empty());
    // An all-zero private key is "none" too.
    auto zero = parse_wg_uapi_get_reply("private_key=" + std::string(64, '0') + "\nerrno=0\n\n");
    REQUIRE(zero.ok());
    CHECK(zero->public_key.empty());
    auto refused = parse_wg_uapi_get_reply("errno=-22\n\n");
    REQUIRE_FALSE(refused.ok());
    CHECK(contains(refused.error().message, "errno=-22"));
}

TEST_CASE("wireguard uapi: malformed get replies are refused with a reason") {
    std::string body(captured_get_reply);
    for (const auto& [reply, reason] : std::vector<std::pair<std::string, std::string>>{
             {"", "blank line"},
             {"\n", "without errno"},
             {"listen_port=1\n\n", "without errno"},
             {"errno=0", "blank line"},
             {"errno=0\n", "blank line"},  // the blank line that ends a reply is missing
             {body.substr(0, body.size() - 1), "blank line"},
             {"listen_port\nerrno=0\n\n", "key=value"},
             {"listen_port=70000\nerrno=0\n\n", "listen_port"},
             {"listen_port=-1\nerrno=0\n\n", "listen_port"},
             {"listen_port=1 \nerrno=0\n\n", "listen_port"},
             {"errno=x\n\n", "errno"},
             {"private_key=00\nerrno=0\n\n", "private_key"},
             {"private_key=" + std::string(64, 'g') + "\nerrno=0\n\n", "private_key"},
             {"public_key=" + p1_hex.substr(2) + "\nerrno=0\n\n", "peer public_key"},
             {"public_key=" + p1_hex + "\nrx_bytes=-1\nerrno=0\n\n", "rx_bytes"},
             {"public_key=" + p1_hex + "\ntx_bytes=18446744073709551616\nerrno=0\n\n", "tx_bytes"},
             {"public_key=" + p1_hex + "\nlast_handshake_time_sec=1e9\nerrno=0\n\n", "last_handshake_time_sec"},
             {"public_key=" + p1_hex + "\npersistent_keepalive_interval=65536\nerrno=0\n\n", "persistent_keepalive"},
         }) {
        CAPTURE(reply);
        auto status = parse_wg_uapi_get_reply(reply);
        REQUIRE_FALSE(status.ok());
        CHECK_MESSAGE(contains(status.error().message, reason), status.error().message);
    }
    auto huge = parse_wg_uapi_get_reply(std::string(wg_uapi_max_reply_bytes + 1, 'a'));
    REQUIRE_FALSE(huge.ok());
    CHECK(contains(huge.error().message, "over"));
}

TEST_CASE("wireguard uapi: set replies") {
    CHECK(parse_wg_uapi_set_reply("errno=0\n\n").ok());  // wireguard-go's answer to a good set
    auto refused = parse_wg_uapi_set_reply("errno=-22\n\n");  // and to `public_key=zz`
    REQUIRE_FALSE(refused.ok());
    CHECK(contains(refused.error().message, "errno=-22"));
    for (const char* bad : {"", "\n", "errno=\n\n", "errno=0x\n\n", "ok\n\n", "errn=0\n\n"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_wg_uapi_set_reply(bad).ok());
    }
}

TEST_CASE("wireguard uapi: reply length is through the blank line") {
    CHECK(wg_uapi_reply_length("") == 0);
    CHECK(wg_uapi_reply_length("errno=0\n") == 0);
    CHECK(wg_uapi_reply_length("errno=0\n\n") == 9);
    CHECK(wg_uapi_reply_length("errno=0\n\nextra") == 9);
    CHECK(wg_uapi_reply_length(captured_get_reply) == captured_get_reply.size());
    CHECK(wg_uapi_reply_length(captured_get_reply.substr(0, captured_get_reply.size() - 1)) == 0);
    CHECK(wg_uapi_reply_length("\n") == 1);
}

TEST_CASE("wireguard uapi: keys convert between base64 and the protocol's lowercase hex") {
    auto hex = wg_key_base64_to_hex(p1, "peer key");
    REQUIRE(hex.ok());
    CHECK(*hex == p1_hex);
    auto back = wg_key_hex_to_base64(p1_hex, "peer key");
    REQUIRE(back.ok());
    CHECK(*back == p1);
    auto bad = wg_key_base64_to_hex("AQID", "peer key");
    REQUIRE_FALSE(bad.ok());
    CHECK(contains(bad.error().message, "peer key"));
    CHECK_FALSE(wg_key_hex_to_base64(p1_hex + "00", "k").ok());
    CHECK_FALSE(wg_key_hex_to_base64(p1_hex.substr(1), "k").ok());
}

TEST_CASE("wireguard uapi: set_interface writes the private key in hex and the port") {
    auto request = wg_uapi_set_interface_request("4KL5quAcMk2PDdGtRWe4gIG2SmGsvO8l+8c8bfZM+WA=", 51999);
    REQUIRE(request.ok());
    CHECK(*request ==
          "set=1\nprivate_key=e0a2f9aae01c324d8f0dd1ad4567b88081b64a61acbcef25fbc73c6df64cf960\nlisten_port=51999\n\n");
    CHECK_FALSE(wg_uapi_set_interface_request("not-a-key", 1).ok());
}

TEST_CASE("wireguard uapi: sync removes gone peers, adds new ones, updates changed ones, leaves the rest out") {
    auto current = captured();
    // p1 stays exactly as it is (10.0.0.2/32, keepalive 25); p2 moves to one address; p3 is gone;
    // p4 is new.
    auto request = sync(current, {{p1, "10.0.0.2"}, {p2, "10.0.0.3"}, {p4, "10.0.0.5"}});
    CHECK(request ==
          "set=1\n"
          "public_key=" + p2_hex + "\nupdate_only=true\nreplace_allowed_ips=true\nallowed_ip=10.0.0.3/32\n"
          "persistent_keepalive_interval=25\n"
          "public_key=" + p3_hex + "\nremove=true\n"
          "public_key=" + p4_hex + "\nreplace_allowed_ips=true\nallowed_ip=10.0.0.5/32\npersistent_keepalive_interval=25\n"
          "\n");
    CHECK_FALSE(contains(request, p1_hex));  // the peer with a live session is not touched
    CHECK_FALSE(contains(request, "replace_peers"));
}

TEST_CASE("wireguard uapi: sync with nothing changed is empty; only a keepalive change is an update") {
    WgDeviceStatus current;
    current.peers.push_back({p1, {"10.0.0.2/32"}, "127.0.0.1:51001", 1796319489, 340, 1308, 25});
    current.peers.push_back({p4, {"10.0.0.5/32"}, "", 0, 0, 0, 25});
    CHECK(sync(current, {{p4, "10.0.0.5"}, {p1, "10.0.0.2/32"}}).empty());  // order and "/32" do not matter
    auto keepalive = sync(current, {{p1, "10.0.0.2"}, {p4, "10.0.0.5"}}, 0);
    CHECK(keepalive == "set=1\n"
                       "public_key=" + p1_hex + "\nupdate_only=true\nreplace_allowed_ips=true\nallowed_ip=10.0.0.2/32\n"
                       "persistent_keepalive_interval=0\n"
                       "public_key=" + p4_hex + "\nupdate_only=true\nreplace_allowed_ips=true\nallowed_ip=10.0.0.5/32\n"
                       "persistent_keepalive_interval=0\n\n");
    // Nothing wanted: every device peer is removed.
    CHECK(sync(current, {}) == "set=1\npublic_key=" + p1_hex + "\nremove=true\npublic_key=" + p4_hex + "\nremove=true\n\n");
    // An empty device and nothing wanted: nothing to send.
    CHECK(sync(WgDeviceStatus{}, {}).empty());
    // An address swap between two existing peers is two updates.
    auto swap = sync(current, {{p1, "10.0.0.5"}, {p4, "10.0.0.2"}});
    CHECK(contains(swap, "public_key=" + p1_hex + "\nupdate_only=true\nreplace_allowed_ips=true\nallowed_ip=10.0.0.5/32\n"));
    CHECK(contains(swap, "public_key=" + p4_hex + "\nupdate_only=true\nreplace_allowed_ips=true\nallowed_ip=10.0.0.2/32\n"));
    CHECK_FALSE(contains(swap, "remove"));
}

TEST_CASE("wireguard uapi: addresses are sent in the form the device reports them") {
    // The device keeps networks with host bits cleared and dotted quads without leading zeros:
    // the same address in another spelling must not read as a change on every sync.
    WgDeviceStatus current;
    current.peers.push_back({p1, {"10.0.0.0/24"}, "", 0, 0, 0, 25});
    current.peers.push_back({p2, {"10.0.1.2/32"}, "", 0, 0, 0, 25});
    CHECK(sync(current, {{p1, "10.0.0.7/24"}, {p2, "010.000.001.002"}}).empty());
    CHECK(sync(WgDeviceStatus{}, {{p1, "010.000.001.002/32"}}) ==
          "set=1\npublic_key=" + p1_hex + "\nreplace_allowed_ips=true\nallowed_ip=10.0.1.2/32\npersistent_keepalive_interval=25\n\n");
    CHECK(contains(sync(WgDeviceStatus{}, {{p1, "192.0.2.255/0"}}), "allowed_ip=0.0.0.0/0\n"));
    // Two spellings of one address are one address.
    CHECK(contains(sync_error(WgDeviceStatus{}, {{p1, "10.0.0.2"}, {p2, "10.0.0.02/32"}}), "two peers"));
}

TEST_CASE("wireguard uapi: sync refuses bad input before anything is sent") {
    WgDeviceStatus empty;
    CHECK(contains(sync_error(empty, {{"AQID", "10.0.0.2"}}), "peer key"));
    CHECK(contains(sync_error(empty, {{"", "10.0.0.2"}}), "peer key"));
    CHECK(contains(sync_error(empty, {{p1, "10.0.0.2"}, {p1, "10.0.0.3"}}), "given twice"));
    CHECK(contains(sync_error(empty, {{p1, "10.0.0.2"}, {p2, "10.0.0.2/32"}}), "two peers"));
    CHECK(contains(sync_error(empty, {{p1, "10.0.0.2"}}, -1), "keepalive"));
    CHECK(contains(sync_error(empty, {{p1, "10.0.0.2"}}, 65536), "keepalive"));
    CHECK(sync(empty, {{p1, "10.0.0.2"}}, 65535) ==
          "set=1\npublic_key=" + p1_hex + "\nreplace_allowed_ips=true\nallowed_ip=10.0.0.2/32\npersistent_keepalive_interval=65535\n\n");
    for (const char* bad : {"", "fd00::2", "10.0.0", "10.0.0.2.", "1..2.3", "10.0.0.256", "10.0.0.2/33", "10.0.0.2/",
                            "10.0.0.2/x", "10.0.0.2/-1", "10.0.0.2/032x", " 10.0.0.2", "10.0.0.2 ",
                            // what a forged store record could try: a second line in the request
                            "10.0.0.2/32\nallowed_ip=0.0.0.0/0", "10.0.0.2\npublic_key=00", "10.0.0.2/32\n"}) {
        std::string address = bad;
        CAPTURE(address);
        CHECK(contains(sync_error(empty, {{p1, bad}}), "is not IPv4"));
    }
}
