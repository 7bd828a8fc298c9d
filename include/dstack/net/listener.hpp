// Listening sockets: TCP, unix (with a file mode), vsock and sockets inherited from systemd.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"
#include "dstack/net/stream.hpp"

namespace dstack::net {

class Listener {
public:
    virtual ~Listener() = default;
    // Waits for the next connection; ec is set (and nullptr returned) on failure or close().
    virtual asio::awaitable<StreamPtr> accept(std::error_code& ec) = 0;
    virtual void close() = 0;
    // "tcp:127.0.0.1:8090", "unix:/var/run/dstack.sock", "vsock:any:8000", "systemd:3"
    virtual std::string description() const = 0;
    // The bound TCP port (useful after binding port 0); 0 for other kinds.
    virtual std::uint16_t local_port() const = 0;
    // The bound vsock port (useful after binding VMADDR_PORT_ANY); 0 for other kinds. Apart from
    // local_port because vsock ports are 32 bits wide.
    virtual std::uint32_t local_vsock_port() const { return 0; }
};

using ListenerPtr = std::unique_ptr<Listener>;

Result<ListenerPtr> listen_tcp(asio::any_io_executor executor, std::string_view host, std::uint16_t port);
// Removes a stale socket file first; creates the socket with `mode` applied atomically (umask).
Result<ListenerPtr> listen_unix(asio::any_io_executor executor, const std::filesystem::path& path, unsigned mode);
// AF_VSOCK: `cid` is a local CID or vsock_cid_any (every local CID; what a guest listens on),
// `port` any 32-bit port, vsock_port_any letting the kernel pick (see vsock-address.hpp).
// A kernel without vsock, or without a transport for `cid`, is named as such in the error.
Result<ListenerPtr> listen_vsock(asio::any_io_executor executor, std::uint32_t cid, std::uint32_t port);
// Sockets passed by systemd socket activation (LISTEN_PID / LISTEN_FDS, fds from 3 on).
// Returns an empty list when the process was not socket-activated.
Result<std::vector<ListenerPtr>> listen_systemd(asio::any_io_executor executor);
// One address string, as config files and command lines give it:
//   "unix:/path[?mode=0660]", "tcp:HOST:PORT", "HOST:PORT", "[::1]:PORT", "systemd:N" (N-th inherited fd),
//   "vsock:CID:PORT" (CID a number or "any"; PORT 0 to 4294967295)
// HOST is an IP literal, "localhost" or "*"/empty (any IPv4); unix sockets default to mode 0660;
// N counts from 0 in LISTEN_FDS order (fd 3 is systemd:0). Each inherited fd can be taken once,
// by listen_address or listen_systemd (which returns those not yet taken).
Result<ListenerPtr> listen_address(asio::any_io_executor executor, std::string_view address);

}  // namespace dstack::net
