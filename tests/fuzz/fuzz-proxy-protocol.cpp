// libFuzzer target: a PROXY protocol header arrives from whatever connects to the gateway's
// listener. Parsing must never crash; a final answer for a prefix is the answer for the whole;
// a parsed header re-encodes to a header that parses back to the same fields (a v2 PROXY
// header byte for byte).
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "dstack/net/proxy-protocol.hpp"

using dstack::ByteView;
using dstack::net::ProxyHeader;
using dstack::net::ProxyParse;
using dstack::net::ProxyParseStatus;

namespace {

bool same(const ProxyHeader& a, const ProxyHeader& b) {
    return a.version == b.version && a.local == b.local && a.ipv6 == b.ipv6 && a.source_ip == b.source_ip &&
           a.destination_ip == b.destination_ip && a.source_port == b.source_port &&
           a.destination_port == b.destination_port && a.tlvs == b.tlvs;
}

// The error's wording may differ (a refusal quotes the bytes received so far); the verdict may not.
bool same(const ProxyParse& a, const ProxyParse& b) {
    return a.status == b.status && a.consumed == b.consumed && same(a.header, b.header);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ByteView bytes(data, size);
    ProxyParse whole = dstack::net::parse_proxy_header(bytes);
    if (whole.status == ProxyParseStatus::need_more && size >= dstack::net::max_proxy_v2_bytes) std::abort();
    if (whole.status == ProxyParseStatus::invalid && whole.error.empty()) std::abort();
    if (whole.status == ProxyParseStatus::complete) {
        const ProxyHeader& header = whole.header;
        if (whole.consumed == 0 || whole.consumed > size || whole.consumed > dstack::net::max_proxy_v2_bytes) std::abort();
        if (header.version == 1 && whole.consumed > dstack::net::max_proxy_v1_bytes) std::abort();
        if (header.local && (!header.source_ip.empty() || !header.destination_ip.empty() || !header.tlvs.empty()))
            std::abort();
        auto encoded = dstack::net::encode_proxy_header(header);
        ProxyParse again = dstack::net::parse_proxy_header(ByteView(encoded));
        if (again.status != ProxyParseStatus::complete || again.consumed != encoded.size()) std::abort();
        if (!same(again.header, header)) std::abort();
        if (header.version == 2 && !header.local &&
            (encoded.size() != whole.consumed || std::memcmp(encoded.data(), data, encoded.size()) != 0))
            std::abort();
    }
    std::size_t cuts[] = {size / 2, size ? size - 1 : 0, size ? data[0] % size : 0, size > 16 ? std::size_t(16) : std::size_t(0)};
    for (std::size_t cut : cuts) {
        ProxyParse part = dstack::net::parse_proxy_header(bytes.first(cut));
        if (part.status != ProxyParseStatus::need_more && !same(part, whole)) std::abort();
    }
    return 0;
}
