// PROXY protocol headers (haproxy's proxy-protocol.txt, versions 1 and 2): the client's address
// as a load balancer in front of the gateway reports it, and as the gateway reports it to a
// backend. Asio-free, so the fuzz build reaches the parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dstack/base/bytes.hpp"

namespace dstack::net {

struct ProxyHeader {
    int version = 2;     // 1 or 2
    bool local = false;  // v2 LOCAL command / v1 "UNKNOWN": no addresses (those fields stay empty)
    bool ipv6 = false;
    std::string source_ip, destination_ip;  // textual, canonical (inet_ntop)
    std::uint16_t source_port = 0, destination_port = 0;
    Bytes tlvs;  // v2 TLV bytes after the address block, as received (checked to be whole TLVs)
};

enum class ProxyParseStatus { complete, need_more, invalid };

struct ProxyParse {
    ProxyParseStatus status = ProxyParseStatus::need_more;
    ProxyHeader header;
    std::size_t consumed = 0;  // the header's length when complete; the connection's data follows
    std::string error;         // why, when invalid
};

inline constexpr std::size_t max_proxy_v1_bytes = 107;   // the whole line, CRLF included
inline constexpr std::size_t max_proxy_v2_bytes = 2048;  // 16 + length

// `bytes` = everything received so far on the connection. need_more: a valid prefix of a header;
// complete / invalid are final (bytes after the header are not looked at). Invalid as soon as
// the bytes cannot start a header (e.g. "GET /"). v1: TCP4/TCP6 with addresses valid for the
// family and decimal ports 0-65535 (no sign, no leading zero), or UNKNOWN. v2: LOCAL (any of
// UNSPEC, INET, INET6; the addresses and TLVs are skipped) or PROXY over INET/INET6 STREAM.
ProxyParse parse_proxy_header(ByteView bytes);

// v1 text or v2 binary per header.version. A v2 header that parse_proxy_header produced is
// re-encoded byte for byte. A header whose addresses are not valid literals of its family
// (only a caller's mistake: both producers here make valid ones) is sent without addresses,
// as v1 UNKNOWN / v2 LOCAL, which makes the receiver use the connection's own addresses.
Bytes encode_proxy_header(const ProxyHeader& header);

// The header a gateway sends when it received none: v2 PROXY/STREAM from the socket's addresses.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, a dual-stack socket's view of an IPv4 peer) count
// as IPv4 when the other address is IPv4 or mapped too; addresses of two families, or text that
// is not an address, give a LOCAL header (no addresses).
ProxyHeader proxy_header_from_addresses(std::string source_ip, std::uint16_t source_port,
                                        std::string destination_ip, std::uint16_t destination_port);

}  // namespace dstack::net
