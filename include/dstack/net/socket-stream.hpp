// Stream implementations over connected asio sockets: TCP, unix and vsock.
#pragma once

#include <string>

#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include "dstack/net/stream.hpp"

namespace dstack::net {

StreamPtr make_tcp_stream(asio::ip::tcp::socket socket);
StreamPtr make_unix_stream(asio::local::stream_protocol::socket socket);
// For accepted sockets, whose own address may not be the path clients use (see listen_unix).
StreamPtr make_unix_stream(asio::local::stream_protocol::socket socket, std::string description);
// A connected AF_VSOCK socket (asio's generic protocol over a sockaddr_vm). Its peer description is
// "vsock:CID:PORT", its client_address() "cid:CID".
StreamPtr make_vsock_stream(asio::generic::stream_protocol::socket socket);

}  // namespace dstack::net
