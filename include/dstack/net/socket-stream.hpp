// Stream implementations over connected asio sockets.
#pragma once

#include <string>

#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include "dstack/net/stream.hpp"

namespace dstack::net {

StreamPtr make_tcp_stream(asio::ip::tcp::socket socket);
StreamPtr make_unix_stream(asio::local::stream_protocol::socket socket);
// For accepted sockets, whose own address may not be the path clients use (see listen_unix).
StreamPtr make_unix_stream(asio::local::stream_protocol::socket socket, std::string description);

}  // namespace dstack::net
