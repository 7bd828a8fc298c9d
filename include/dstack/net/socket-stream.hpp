// Stream implementations over connected asio sockets.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include "dstack/net/stream.hpp"

namespace dstack::net {

StreamPtr make_tcp_stream(asio::ip::tcp::socket socket);
StreamPtr make_unix_stream(asio::local::stream_protocol::socket socket);

}  // namespace dstack::net
