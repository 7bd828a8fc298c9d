// PROXY protocol v1/v2: upstream's vectors (spec gateway.md §3.2), haproxy's field rules, and
// round trips through the encoder.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/net/proxy-protocol.hpp"

using namespace dstack;
using namespace dstack::net;

namespace {

const std::string signature = "0d0a0d0a000d0a515549540a";

Bytes unhex(const std::string& text) {
    auto bytes = hex_decode(text);
    REQUIRE(bytes.ok());
    return *bytes;
}

ProxyParse parse(const Bytes& bytes) { return parse_proxy_header(ByteView(bytes)); }
ProxyParse parse(const std::string& text) { return parse_proxy_header(as_bytes(text)); }

// Every proper prefix is need_more; the whole, and the whole with data after it, are complete
// with `consumed` = the header's length.
ProxyHeader parse_every_split(const Bytes& header) {
    for (std::size_t size = 0; size < header.size(); ++size) {
        auto partial = parse_proxy_header(ByteView(header).first(size));
        CAPTURE(size);
        REQUIRE_MESSAGE(partial.status == ProxyParseStatus::need_more, partial.error);
    }
    Bytes with_data = header;
    with_data.insert(with_data.end(), {0x16, 0x03, 0x01, '\r', '\n'});
    auto whole = parse(with_data);
    REQUIRE_MESSAGE(whole.status == ProxyParseStatus::complete, whole.error);
    CHECK(whole.consumed == header.size());
    return whole.header;
}

std::string invalid_reason(const Bytes& bytes) {
    auto result = parse(bytes);
    REQUIRE(result.status == ProxyParseStatus::invalid);
    CHECK(result.consumed == 0);
    return result.error;
}
std::string invalid_reason(const std::string& text) { return invalid_reason(to_bytes(text)); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

void check_same(const ProxyHeader& a, const ProxyHeader& b) {
    CHECK(a.version == b.version);
    CHECK(a.local == b.local);
    CHECK(a.ipv6 == b.ipv6);
    CHECK(a.source_ip == b.source_ip);
    CHECK(a.destination_ip == b.destination_ip);
    CHECK(a.source_port == b.source_port);
    CHECK(a.destination_port == b.destination_port);
    CHECK(a.tlvs == b.tlvs);
}

}  // namespace

TEST_CASE("proxy protocol: upstream's v1 vector") {
    auto header = parse_every_split(to_bytes("PROXY TCP4 1.2.3.4 5.6.7.8 11111 22222\r\n"));
    CHECK(header.version == 1);
    CHECK_FALSE(header.local);
    CHECK_FALSE(header.ipv6);
    CHECK(header.source_ip == "1.2.3.4");
    CHECK(header.destination_ip == "5.6.7.8");
    CHECK(header.source_port == 11111);
    CHECK(header.destination_port == 22222);
    CHECK(as_chars(encode_proxy_header(header)) == "PROXY TCP4 1.2.3.4 5.6.7.8 11111 22222\r\n");
}

TEST_CASE("proxy protocol: upstream's v2 vector, and its exact re-encoding") {
    Bytes wire = unhex(signature + "2111000c" + "01020304" + "05060708" + "2b67" + "56ce");
    auto header = parse_every_split(wire);
    CHECK(header.version == 2);
    CHECK_FALSE(header.local);
    CHECK_FALSE(header.ipv6);
    CHECK(header.source_ip == "1.2.3.4");
    CHECK(header.destination_ip == "5.6.7.8");
    CHECK(header.source_port == 11111);
    CHECK(header.destination_port == 22222);
    CHECK(header.tlvs.empty());
    CHECK(encode_proxy_header(header) == wire);
}

TEST_CASE("proxy protocol: upstream's refusals: HTTP, v1 without CRLF in 107 bytes, v2 longer than 2048") {
    CHECK(contains(invalid_reason("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "no valid PROXY protocol header"));
    CHECK(contains(invalid_reason("G"), "no valid PROXY protocol header"));  // decided at the first byte
    CHECK(contains(invalid_reason("PROXX"), "no valid PROXY protocol header"));
    CHECK(contains(invalid_reason(Bytes{0x0d, 0x0a, 0x0d, 0x0b}), "no valid PROXY protocol header"));
    // "PROXY" and 107 more bytes without CRLF (upstream's test); the limit itself is 107 in all.
    CHECK(contains(invalid_reason("PROXY" + std::string(107, ' ')), "no CRLF terminator within 107 bytes"));
    CHECK(contains(invalid_reason("PROXY " + std::string(101, 'x')), "no CRLF terminator within 107 bytes"));
    CHECK(parse("PROXY " + std::string(100, 'x')).status == ProxyParseStatus::need_more);
    CHECK(parse("PROXY " + std::string(99, 'x') + "\r").status == ProxyParseStatus::need_more);
    CHECK(contains(invalid_reason("PROXY " + std::string(100, 'x') + "\r"), "107 bytes"));  // the LF would be the 108th
    CHECK(contains(invalid_reason("PROXY " + std::string(101, 'x') + "\r\n"), "107 bytes"));  // 109 bytes with CRLF
    // v2 length 2048: 2064 bytes in all; refused from the fixed 16 bytes alone.
    CHECK(contains(invalid_reason(unhex(signature + "21110800")), "too long"));
}

TEST_CASE("proxy protocol: v1 at the limit, TCP6 and UNKNOWN") {
    // The longest TCP6 line haproxy's spec names: 104 bytes + CRLF.
    std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    std::string line = "PROXY TCP6 " + full + " " + full + " 65535 65535\r\n";
    REQUIRE(line.size() == 104);
    auto header = parse_every_split(to_bytes(line));
    CHECK(header.ipv6);
    CHECK(header.source_ip == full);
    CHECK(header.source_port == 65535);
    CHECK(as_chars(encode_proxy_header(header)) == line);
    // Canonical text: IPv6 compressed and lowercased as inet_ntop writes it.
    auto v6 = parse_every_split(to_bytes("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:1.2.3.4 0 443\r\n"));
    CHECK(v6.source_ip == "2001:db8::1");
    CHECK(v6.destination_ip == "::ffff:1.2.3.4");
    CHECK(v6.source_port == 0);
    for (std::string unknown : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:: ffff:: 1 2\r\n", "PROXY UNKNOWN whatever\r\n"}) {
        auto result = parse_every_split(to_bytes(unknown));
        CHECK(result.version == 1);
        CHECK(result.local);
        CHECK(result.source_ip.empty());
        CHECK(as_chars(encode_proxy_header(result)) == "PROXY UNKNOWN\r\n");
    }
}

TEST_CASE("proxy protocol: v1 fields are checked strictly") {
    for (auto [line, reason] : std::vector<std::pair<std::string, std::string>>{
             {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "source \"::1\" is not an IPv4 address"},
             {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "source \"1.2.3.4\" is not an IPv6 address"},
             {"PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", "destination \"5.6.7.256\" is not an IPv4 address"},
             {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "source \"01.2.3.4\""},
             {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "source \"1.2.3\""},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "source port \"+1\""},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "destination port \"65536\""},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "source port \"080\""},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", "destination port \"-2\""},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", "destination port \"\""},
             {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "single spaces"},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "single spaces"},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "single spaces"},
             {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "not TCP4, TCP6 or UNKNOWN"},
             {"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "not TCP4, TCP6 or UNKNOWN"},
             {"PROXY \r\n", "not TCP4, TCP6 or UNKNOWN"},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "byte 0x0a"},
             {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR without LF"},
             {"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", "byte 0x09"},
             {"PROXY UNKNOWN \xff\r\n", "byte 0xff"},
         }) {
        CAPTURE(line);
        std::string why = invalid_reason(line);
        CHECK_MESSAGE(contains(why, reason), why);
    }
}

TEST_CASE("proxy protocol: v2 over IPv6 with TLVs round-trips byte for byte") {
    std::string source = "20010db8000000000000000000000001", destination = "fe800000000000000000000000000002";
    std::string tlvs = "0200076578616d706c65" "040000" "0f000102";  // AUTHORITY "example", an empty NOOP, a custom 0x0f
    Bytes tlv_bytes = unhex(tlvs);
    std::size_t length = 36 + tlv_bytes.size();
    Bytes wire = unhex(signature + "2121" + fmt::format("{:04x}", length) + source + destination + "01bb" + "0050" + tlvs);
    auto header = parse_every_split(wire);
    CHECK(header.ipv6);
    CHECK(header.source_ip == "2001:db8::1");
    CHECK(header.destination_ip == "fe80::2");
    CHECK(header.source_port == 443);
    CHECK(header.destination_port == 80);
    CHECK(header.tlvs == tlv_bytes);
    CHECK(encode_proxy_header(header) == wire);
}

TEST_CASE("proxy protocol: v2 at the 2048-byte limit") {
    // One NOOP TLV filling the header to exactly 2048 bytes.
    std::size_t tlv_value = 2048 - 16 - 12 - 3;
    Bytes wire = unhex(signature + "21110" + fmt::format("{:03x}", 2048 - 16) + "7f000001" + "7f000002" + "0001" + "0002" +
                       "04" + fmt::format("{:04x}", tlv_value));
    wire.resize(2048, 0);
    auto result = parse(wire);
    REQUIRE_MESSAGE(result.status == ProxyParseStatus::complete, result.error);
    CHECK(result.consumed == 2048);
    CHECK(encode_proxy_header(result.header) == wire);
    CHECK(contains(invalid_reason(unhex(signature + "21110" + fmt::format("{:03x}", 2048 - 15))), "2049 bytes"));
}

TEST_CASE("proxy protocol: v2 LOCAL carries no addresses, whatever its family") {
    for (std::string rest : std::vector<std::string>{"2000" "0000", "2011" "000c" "0102030405060708" "00010002", "2000" "0003" "000000",
                             "2021" "0024" + std::string(72, '0')}) {
        CAPTURE(rest);
        auto header = parse_every_split(unhex(signature + rest));
        CHECK(header.version == 2);
        CHECK(header.local);
        CHECK(header.source_ip.empty());
        CHECK(header.destination_ip.empty());
        CHECK(header.tlvs.empty());
        CHECK(encode_proxy_header(header) == unhex(signature + "20000000"));
    }
}

TEST_CASE("proxy protocol: v2 refusals") {
    for (auto [rest, reason] : std::vector<std::pair<std::string, std::string>>{
             {"11", "version 1"},
             {"31", "version 3"},
             {"22", "command 2"},
             {"2100", "0x00 is not supported"},     // PROXY needs addresses
             {"2131", "0x31 is not supported"},     // AF_UNIX
             {"2112", "0x12 is not supported"},     // UDP
             {"2110", "0x10 is not supported"},     // UNSPEC transport with PROXY
             {"2012", "0x12 is not supported"},     // LOCAL: UDP still not
             {"2111000b", "shorter than the IPv4 address block"},
             {"21210023", "shorter than the IPv6 address block"},
             {"2011000b", "shorter than the IPv4 address block"},
             {"2111000e" "0102030405060708" "00010002" "0400", "TLVs do not fill"},
             {"2111000f" "0102030405060708" "00010002" "040001", "TLVs do not fill"},
             {"21110011" "0102030405060708" "00010002" "04000100" "aa", "TLVs do not fill"},
         }) {
        CAPTURE(rest);
        std::string why = invalid_reason(unhex(signature + rest));
        CHECK_MESSAGE(contains(why, reason), why);
    }
}

TEST_CASE("proxy protocol: the header a gateway makes from its socket's addresses") {
    auto v4 = proxy_header_from_addresses("10.0.0.1", 40000, "10.0.0.2", 443);
    CHECK(v4.version == 2);
    CHECK_FALSE(v4.local);
    CHECK_FALSE(v4.ipv6);
    CHECK(encode_proxy_header(v4) == unhex(signature + "2111000c" + "0a000001" + "0a000002" + "9c40" + "01bb"));
    check_same(parse(encode_proxy_header(v4)).header, v4);

    auto v6 = proxy_header_from_addresses("::1", 1, "2001:DB8::2", 2);
    CHECK(v6.ipv6);
    CHECK(v6.destination_ip == "2001:db8::2");
    CHECK(encode_proxy_header(v6) ==
          unhex(signature + "21210024" + "00000000000000000000000000000001" + "20010db8000000000000000000000002" + "0001" +
                "0002"));
    check_same(parse(encode_proxy_header(v6)).header, v6);

    // A dual-stack socket's view of IPv4 peers.
    auto mapped = proxy_header_from_addresses("::ffff:192.0.2.1", 5, "::ffff:192.0.2.2", 6);
    CHECK_FALSE(mapped.ipv6);
    CHECK(mapped.source_ip == "192.0.2.1");
    CHECK(mapped.destination_ip == "192.0.2.2");
    auto half_mapped = proxy_header_from_addresses("::ffff:192.0.2.1", 5, "192.0.2.2", 6);
    CHECK_FALSE(half_mapped.ipv6);
    CHECK(half_mapped.source_ip == "192.0.2.1");

    // Two families, or no address at all: LOCAL.
    for (auto header : {proxy_header_from_addresses("192.0.2.1", 1, "2001:db8::1", 2),
                        proxy_header_from_addresses("not an address", 1, "192.0.2.1", 2),
                        proxy_header_from_addresses("", 1, "", 2)}) {
        CHECK(header.local);
        CHECK(header.source_ip.empty());
        CHECK(encode_proxy_header(header) == unhex(signature + "20000000"));
    }
}

TEST_CASE("proxy protocol: encode round-trips through parse, in both versions") {
    for (int version : {1, 2}) {
        for (auto header : {proxy_header_from_addresses("203.0.113.7", 65535, "198.51.100.1", 0),
                            proxy_header_from_addresses("2001:db8::7", 0, "2001:db8::8", 65535)}) {
            header.version = version;
            CAPTURE(version);
            CAPTURE(header.source_ip);
            Bytes wire = encode_proxy_header(header);
            auto parsed = parse_every_split(wire);
            check_same(parsed, header);
            CHECK(encode_proxy_header(parsed) == wire);
        }
    }
    // A header with an address that is not of its family is sent without addresses.
    ProxyHeader wrong;
    wrong.version = 1;
    wrong.source_ip = "::1";
    wrong.destination_ip = "127.0.0.1";
    CHECK(as_chars(encode_proxy_header(wrong)) == "PROXY UNKNOWN\r\n");
    wrong.version = 2;
    CHECK(encode_proxy_header(wrong) == unhex(signature + "20000000"));
}
