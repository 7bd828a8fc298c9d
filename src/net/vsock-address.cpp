// vsock address text and the errors of vsock socket calls.
#include "dstack/net/vsock-address.hpp"

#include <cerrno>
#include <charconv>
#include <system_error>

#include <fmt/format.h>

namespace dstack::net {

namespace {

// Digits only: from_chars would also take what no config writer means ("+3", leading spaces do
// not occur, but an empty string or "3x" must fail), and a 2^32 overflow must not wrap.
bool parse_u32(std::string_view text, std::uint32_t& out) {
    if (text.empty() || text.size() > 10) return false;
    for (char c : text)
        if (c < '0' || c > '9') return false;
    std::uint64_t value = 0;
    auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (err != std::errc() || end != text.data() + text.size() || value > 0xFFFFFFFFu) return false;
    out = static_cast<std::uint32_t>(value);
    return true;
}

}  // namespace

std::string VsockAddress::text() const {
    if (cid == vsock_cid_any) return fmt::format("vsock:any:{}", port);
    return fmt::format("vsock:{}:{}", cid, port);
}

Result<VsockAddress> parse_vsock_address(std::string_view cid_port, std::string_view original, VsockUse use) {
    auto colon = cid_port.find(':');
    if (colon == std::string_view::npos)
        return make_error("vsock address '{}': expected vsock:CID:PORT, e.g. vsock:any:8000 or vsock:2:12000", original);
    std::string_view cid_text = cid_port.substr(0, colon);
    std::string_view port_text = cid_port.substr(colon + 1);
    VsockAddress address;
    if (cid_text == "any") {
        if (use == VsockUse::connect)
            return make_error("vsock address '{}': CID 'any' is for listening; name the CID to connect to", original);
        address.cid = vsock_cid_any;
    } else if (!parse_u32(cid_text, address.cid)) {
        return make_error("vsock address '{}': CID '{}' is not a number from 0 to 4294967295 or 'any'", original,
                          cid_text);
    } else if (use == VsockUse::connect && address.cid == vsock_cid_any) {
        return make_error("vsock address '{}': CID {} is VMADDR_CID_ANY, which cannot be connected to", original,
                          address.cid);
    }
    if (!parse_u32(port_text, address.port))
        return make_error("vsock address '{}': port '{}' is not a number from 0 to 4294967295", original, port_text);
    if (use == VsockUse::connect && address.port == vsock_port_any)
        return make_error("vsock address '{}': port {} is VMADDR_PORT_ANY, which cannot be connected to", original,
                          address.port);
    return address;
}

std::string vsock_error_text(const VsockAddress& address, std::string_view step, int error_number) {
    std::string system = std::error_code(error_number, std::system_category()).message();
    std::string where = address.text();
    switch (error_number) {
    case EAFNOSUPPORT:
        return fmt::format("{}: this kernel has no vsock support (AF_VSOCK: {})", where, system);
    case ENODEV:
        // No transport serves that CID: a kernel built without vsock transports, a guest asked
        // for its own CID, or CID 1 without the vsock_loopback module.
        if (address.cid == vsock_cid_local)
            return fmt::format("{}: this kernel has no vsock loopback transport (load vsock_loopback) (AF_VSOCK {}: {})",
                               where, step, system);
        return fmt::format("{}: this kernel has no vsock support for CID {} (AF_VSOCK {}: {})", where,
                           address.cid, step, system);
    case EADDRNOTAVAIL:
        if (address.cid == vsock_cid_local)
            return fmt::format("{}: CID 1 is not available: this kernel has no vsock loopback transport "
                               "(load vsock_loopback) (AF_VSOCK {}: {})",
                               where, step, system);
        return fmt::format("{}: CID {} is not a CID of this machine (AF_VSOCK {}: {})", where, address.cid, step,
                           system);
    default:
        return fmt::format("{}: {}: {}", where, step, system);
    }
}

}  // namespace dstack::net
