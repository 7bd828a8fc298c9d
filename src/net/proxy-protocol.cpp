// PROXY protocol v1 and v2, per haproxy's proxy-protocol.txt (sections 2.1 and 2.2).
#include "dstack/net/proxy-protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace dstack::net {

namespace {

constexpr std::string_view v1_prefix = "PROXY ";
constexpr std::array<std::uint8_t, 12> v2_signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::uint8_t v2_local = 0x20, v2_proxy = 0x21;  // version 2 in the high nibble
constexpr std::uint8_t family_unspec = 0x0, family_inet = 0x1, family_inet6 = 0x2;
constexpr std::uint8_t transport_unspec = 0x0, transport_stream = 0x1;

ProxyParse invalid(std::string why) {
    ProxyParse parse;
    parse.status = ProxyParseStatus::invalid;
    parse.error = std::move(why);
    return parse;
}

ProxyParse complete(ProxyHeader header, std::size_t consumed) {
    ProxyParse parse;
    parse.status = ProxyParseStatus::complete;
    parse.header = std::move(header);
    parse.consumed = consumed;
    return parse;
}

// An address literal of one family, back as canonical text (inet_ntop's).
bool address_text(int family, std::string_view text, std::string& canonical) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
    char copy[INET6_ADDRSTRLEN] = {};
    std::memcpy(copy, text.data(), text.size());
    unsigned char raw[16];
    if (::inet_pton(family, copy, raw) != 1) return false;
    char out[INET6_ADDRSTRLEN] = {};
    if (::inet_ntop(family, raw, out, sizeof out) == nullptr) return false;
    canonical = out;
    return true;
}

std::string text_of(int family, const std::uint8_t* raw) {
    char out[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, raw, out, sizeof out);
    return out;
}

// "0".."65535", digits only: no sign, no leading zero, no spaces.
bool port_value(std::string_view text, std::uint16_t& port) {
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + unsigned(c - '0');
    }
    if (value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

std::string shown(ByteView bytes) {
    return fmt::format("{:?}", std::string(as_chars(bytes.first(std::min<std::size_t>(bytes.size(), 16)))));
}

ProxyParse parse_v1_line(std::string_view line, std::size_t consumed) {
    std::vector<std::string_view> fields;
    for (std::size_t from = 0;;) {
        std::size_t space = line.find(' ', from);
        fields.push_back(line.substr(from, space == std::string_view::npos ? std::string_view::npos : space - from));
        if (space == std::string_view::npos) break;
        from = space + 1;
    }
    ProxyHeader header;
    header.version = 1;
    // UNKNOWN: the rest of the line, if any, is to be ignored (section 2.1).
    if (fields.size() >= 2 && fields[1] == "UNKNOWN") {
        header.local = true;
        return complete(std::move(header), consumed);
    }
    if (fields.size() < 2 || (fields[1] != "TCP4" && fields[1] != "TCP6"))
        return invalid(fmt::format("PROXY v1 header {:?}: the protocol is not TCP4, TCP6 or UNKNOWN", line));
    if (fields.size() != 6)
        return invalid(fmt::format("PROXY v1 header {:?}: expected \"PROXY {} <source> <destination> <source port> "
                                   "<destination port>\" separated by single spaces",
                                   line, fields[1]));
    header.ipv6 = fields[1] == "TCP6";
    int family = header.ipv6 ? AF_INET6 : AF_INET;
    const char* kind = header.ipv6 ? "IPv6" : "IPv4";
    if (!address_text(family, fields[2], header.source_ip))
        return invalid(fmt::format("PROXY v1 header {:?}: the source {:?} is not an {} address", line, fields[2], kind));
    if (!address_text(family, fields[3], header.destination_ip))
        return invalid(
            fmt::format("PROXY v1 header {:?}: the destination {:?} is not an {} address", line, fields[3], kind));
    if (!port_value(fields[4], header.source_port))
        return invalid(fmt::format("PROXY v1 header {:?}: the source port {:?} is not a decimal number 0-65535",
                                   line, fields[4]));
    if (!port_value(fields[5], header.destination_port))
        return invalid(fmt::format("PROXY v1 header {:?}: the destination port {:?} is not a decimal number 0-65535",
                                   line, fields[5]));
    return complete(std::move(header), consumed);
}

ProxyParse parse_v1(ByteView bytes) {
    std::size_t limit = std::min(bytes.size(), max_proxy_v1_bytes);
    for (std::size_t i = v1_prefix.size(); i < limit; ++i) {
        std::uint8_t c = bytes[i];
        if (c >= 0x20 && c <= 0x7e) continue;
        if (c != '\r')
            return invalid(fmt::format("PROXY v1 header: byte 0x{:02x} at offset {} before the CRLF", c, i));
        if (i + 1 >= max_proxy_v1_bytes) break;
        if (i + 1 == bytes.size()) return ProxyParse{};
        if (bytes[i + 1] != '\n') return invalid(fmt::format("PROXY v1 header: CR without LF at offset {}", i));
        return parse_v1_line(as_chars(bytes.first(i)), i + 2);
    }
    if (bytes.size() < max_proxy_v1_bytes) return ProxyParse{};
    return invalid("PROXY v1 header: no CRLF terminator within 107 bytes");
}

// Whole TLVs (type, 16-bit length, value) fill the rest of the header exactly: a receiver such as
// haproxy refuses a header whose TLVs run past its end.
bool whole_tlvs(ByteView tlvs) {
    std::size_t at = 0;
    while (at < tlvs.size()) {
        if (tlvs.size() - at < 3) return false;
        std::size_t length = (std::size_t(tlvs[at + 1]) << 8) | tlvs[at + 2];
        at += 3;
        if (tlvs.size() - at < length) return false;
        at += length;
    }
    return true;
}

ProxyParse parse_v2(ByteView bytes) {
    if (bytes.size() < 13) return ProxyParse{};
    std::uint8_t version_command = bytes[12];
    if ((version_command >> 4) != 2)
        return invalid(fmt::format("PROXY v2 header: version {} (expected 2)", version_command >> 4));
    if (version_command != v2_local && version_command != v2_proxy)
        return invalid(fmt::format("PROXY v2 header: command {} is neither LOCAL (0) nor PROXY (1)", version_command & 0xF));
    bool local = version_command == v2_local;
    if (bytes.size() < 14) return ProxyParse{};
    std::uint8_t family = bytes[13] >> 4, transport = bytes[13] & 0xF;
    bool family_ok = family == family_inet || family == family_inet6 || (local && family == family_unspec);
    bool transport_ok = transport == transport_stream || (local && transport == transport_unspec);
    if (!family_ok || !transport_ok)
        return invalid(fmt::format("PROXY v2 header: address family/transport 0x{:02x} is not supported (PROXY needs "
                                   "TCP over IPv4 (0x11) or IPv6 (0x21); LOCAL also allows UNSPEC (0x00))",
                                   bytes[13]));
    if (bytes.size() < 16) return ProxyParse{};
    std::size_t length = (std::size_t(bytes[14]) << 8) | bytes[15];
    std::size_t total = 16 + length;
    if (total > max_proxy_v2_bytes)
        return invalid(fmt::format("PROXY v2 header is too long ({} bytes; at most {})", total, max_proxy_v2_bytes));
    std::size_t block = family == family_inet ? 12 : family == family_inet6 ? 36 : 0;
    if (length < block)
        return invalid(fmt::format("PROXY v2 header: length {} is shorter than the {} address block ({} bytes)", length,
                                   family == family_inet ? "IPv4" : "IPv6", block));
    if (bytes.size() < total) return ProxyParse{};
    ProxyHeader header;
    header.version = 2;
    header.local = local;
    if (local) return complete(std::move(header), total);  // the receiver ignores LOCAL's addresses and TLVs
    const std::uint8_t* addresses = bytes.data() + 16;
    header.ipv6 = family == family_inet6;
    int af = header.ipv6 ? AF_INET6 : AF_INET;
    std::size_t size = header.ipv6 ? 16 : 4;
    header.source_ip = text_of(af, addresses);
    header.destination_ip = text_of(af, addresses + size);
    header.source_port = static_cast<std::uint16_t>((addresses[2 * size] << 8) | addresses[2 * size + 1]);
    header.destination_port = static_cast<std::uint16_t>((addresses[2 * size + 2] << 8) | addresses[2 * size + 3]);
    auto tlvs = bytes.subspan(16 + block, length - block);
    if (!whole_tlvs(tlvs)) return invalid("PROXY v2 header: its TLVs do not fill the header exactly");
    header.tlvs.assign(tlvs.begin(), tlvs.end());
    return complete(std::move(header), total);
}

bool raw_address(int family, const std::string& text, std::uint8_t* out) {
    return ::inet_pton(family, text.c_str(), out) == 1;
}

void put_u16(Bytes& out, std::size_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8));
    out.push_back(static_cast<std::uint8_t>(value));
}

}  // namespace

ProxyParse parse_proxy_header(ByteView bytes) {
    if (bytes.empty()) return ProxyParse{};
    std::size_t prefix = std::min(bytes.size(), v1_prefix.size());
    if (as_chars(bytes.first(prefix)) == v1_prefix.substr(0, prefix)) {
        if (bytes.size() < v1_prefix.size()) return ProxyParse{};
        return parse_v1(bytes);
    }
    prefix = std::min(bytes.size(), v2_signature.size());
    if (std::equal(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(prefix), v2_signature.begin()))
        return parse_v2(bytes);
    return invalid(fmt::format("no valid PROXY protocol header (the connection starts with {})", shown(bytes)));
}

Bytes encode_proxy_header(const ProxyHeader& header) {
    int family = header.ipv6 ? AF_INET6 : AF_INET;
    std::size_t size = header.ipv6 ? 16 : 4;
    std::uint8_t source[16] = {}, destination[16] = {};
    bool addresses = !header.local && raw_address(family, header.source_ip, source) &&
                     raw_address(family, header.destination_ip, destination);
    if (header.version == 1) {
        std::string line = "PROXY UNKNOWN\r\n";
        if (addresses)
            line = fmt::format("PROXY {} {} {} {} {}\r\n", header.ipv6 ? "TCP6" : "TCP4", text_of(family, source),
                               text_of(family, destination), header.source_port, header.destination_port);
        return to_bytes(line);
    }
    Bytes out(v2_signature.begin(), v2_signature.end());
    if (!addresses) {
        out.insert(out.end(), {v2_local, 0x00, 0x00, 0x00});
        return out;
    }
    // TLVs that would push the header past the limit (only a caller's own) are left out.
    bool with_tlvs = 16 + 2 * size + 4 + header.tlvs.size() <= max_proxy_v2_bytes;
    out.push_back(v2_proxy);
    out.push_back(header.ipv6 ? 0x21 : 0x11);
    put_u16(out, 2 * size + 4 + (with_tlvs ? header.tlvs.size() : 0));
    out.insert(out.end(), source, source + size);
    out.insert(out.end(), destination, destination + size);
    put_u16(out, header.source_port);
    put_u16(out, header.destination_port);
    if (with_tlvs) out.insert(out.end(), header.tlvs.begin(), header.tlvs.end());
    return out;
}

ProxyHeader proxy_header_from_addresses(std::string source_ip, std::uint16_t source_port, std::string destination_ip,
                                        std::uint16_t destination_port) {
    // An address as IPv4 where it is one (plain or IPv4-mapped), else IPv6, else nothing.
    struct Seen {
        bool v4 = false, v6 = false, mapped = false;
        std::string text4, text6;
    };
    auto look = [](const std::string& text) {
        Seen seen;
        std::uint8_t raw[16];
        if (raw_address(AF_INET, text, raw)) {
            seen.v4 = true;
            seen.text4 = text_of(AF_INET, raw);
        } else if (raw_address(AF_INET6, text, raw)) {
            seen.v6 = true;
            seen.text6 = text_of(AF_INET6, raw);
            static constexpr std::uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            if (std::memcmp(raw, mapped_prefix, 12) == 0) {
                seen.mapped = true;
                seen.text4 = text_of(AF_INET, raw + 12);
            }
        }
        return seen;
    };
    Seen source = look(source_ip), destination = look(destination_ip);
    ProxyHeader header;
    header.version = 2;
    header.source_port = source_port;
    header.destination_port = destination_port;
    if ((source.v4 || source.mapped) && (destination.v4 || destination.mapped)) {
        header.source_ip = source.text4;
        header.destination_ip = destination.text4;
    } else if (source.v6 && destination.v6) {
        header.ipv6 = true;
        header.source_ip = source.text6;
        header.destination_ip = destination.text6;
    } else {
        header = ProxyHeader{};
        header.local = true;
    }
    return header;
}

}  // namespace dstack::net
