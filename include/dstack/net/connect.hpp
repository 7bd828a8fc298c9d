// Outgoing connections over TCP (names resolved through c-ares), unix sockets and vsock.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"
#include "dstack/net/stream.hpp"

namespace dstack::net {

// Host may be a name, an IPv4 literal or an IPv6 literal (with or without brackets).
asio::awaitable<Result<StreamPtr>> connect_tcp(asio::any_io_executor executor, std::string host, std::uint16_t port,
                                               std::chrono::milliseconds timeout);
asio::awaitable<Result<StreamPtr>> connect_unix(asio::any_io_executor executor, std::filesystem::path path,
                                                std::chrono::milliseconds timeout);
// `cid` names a VM (or 2 for the host, 1 for this machine over vsock_loopback); errors name a
// kernel without vsock or without a transport for that CID as such.
asio::awaitable<Result<StreamPtr>> connect_vsock(asio::any_io_executor executor, std::uint32_t cid, std::uint32_t port,
                                                 std::chrono::milliseconds timeout);

}  // namespace dstack::net
