// AF_VSOCK addresses as config files and URLs write them: "CID:PORT" after a "vsock:" or
// "vsock://" prefix. Asio-free, so the fuzz build can reach the parser.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dstack/base/result.hpp"

namespace dstack::net {

// The kernel's reserved values (linux/vm_sockets.h), spelled out so callers need not include it.
inline constexpr std::uint32_t vsock_cid_any = 0xFFFFFFFFu;    // VMADDR_CID_ANY: every local CID
inline constexpr std::uint32_t vsock_cid_local = 1;            // VMADDR_CID_LOCAL: loopback
inline constexpr std::uint32_t vsock_cid_host = 2;             // VMADDR_CID_HOST
inline constexpr std::uint32_t vsock_port_any = 0xFFFFFFFFu;   // VMADDR_PORT_ANY: kernel picks

struct VsockAddress {
    VsockAddress() = default;  // not an aggregate: travels into coroutines (see README)
    VsockAddress(std::uint32_t cid_value, std::uint32_t port_value) : cid(cid_value), port(port_value) {}

    std::uint32_t cid = vsock_cid_any;
    std::uint32_t port = 0;

    // "vsock:3:8000"; CID_ANY as "any", so the text parses back to the same address.
    std::string text() const;
};

enum class VsockUse { listen, connect };

// Parses "CID:PORT" (the part after "vsock:"). CID: a decimal number, or "any" (listening only);
// PORT: a decimal number up to 4294967295 (that one, VMADDR_PORT_ANY, lets the kernel pick a port
// when listening, and cannot be connected to). `original` is the whole text, for messages.
Result<VsockAddress> parse_vsock_address(std::string_view cid_port, std::string_view original, VsockUse use);

// The error for a failed vsock socket call, by errno: a kernel without AF_VSOCK, or without a
// transport for the CID, is named as such instead of a bare strerror.
//   "vsock:3:8000: this kernel has no vsock support (AF_VSOCK: Address family not supported by protocol)"
std::string vsock_error_text(const VsockAddress& address, std::string_view step, int error_number);

}  // namespace dstack::net
