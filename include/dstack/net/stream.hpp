// A connected byte stream: the one abstraction HTTP runs over, whether the bytes travel on
// TCP, a unix socket, a vsock or inside TLS. Errors are reported through error codes; no
// exception leaves these calls.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/bytes.hpp"

namespace dstack::net {

class Stream {
public:
    virtual ~Stream() = default;

    // Reads at least one byte, or returns 0 with ec == asio::error::eof at orderly end of stream.
    virtual asio::awaitable<std::size_t> read_some(std::span<std::uint8_t> buffer, std::error_code& ec) = 0;
    // Writes all bytes or fails.
    virtual asio::awaitable<void> write_all(ByteView data, std::error_code& ec) = 0;
    // Orderly end of our sending side (TCP FIN / TLS close_notify); reading may continue.
    virtual asio::awaitable<void> shutdown_send(std::error_code& ec) = 0;
    // Immediate close; pending operations complete with operation_aborted. Safe to call twice.
    virtual void close() = 0;

    virtual asio::any_io_executor get_executor() = 0;
    // "tcp:127.0.0.1:51234", "unix:/run/x.sock", "vsock:3:8000" — for logs, never for auth.
    virtual std::string peer_description() const = 0;
    // Who is on the other end, as far as sharing a server fairly between clients goes: servers
    // count connections per value (http::ServerOptions::max_connections_per_address). Empty when
    // unknown (such connections are only counted against the server-wide limits). Never for
    // authentication. "ip:192.0.2.1", "ip6:2001:db8:1:2::/64", "uid:1000", "cid:3" (a vsock
    // peer); see socket-stream.cpp.
    virtual std::string client_address() const { return {}; }
};

using StreamPtr = std::unique_ptr<Stream>;

}  // namespace dstack::net
