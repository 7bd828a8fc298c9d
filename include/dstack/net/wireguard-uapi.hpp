// A WireGuard device driven through its userspace implementation's configuration socket
// (/var/run/wireguard/<interface>.sock, as wireguard-go makes it): status, interface keys, and
// peer synchronisation that leaves unchanged peers' sessions alone. One connection per call; every
// call is bounded in time (connect, request and reply together) and its reply in size.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"
#include "dstack/net/wireguard-peer.hpp"
#include "dstack/net/wireguard-uapi-message.hpp"

namespace dstack::net {

class WireGuardDevice {
public:
    explicit WireGuardDevice(std::filesystem::path uapi_socket,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10));

    const std::filesystem::path& socket_path() const { return socket_; }

    asio::awaitable<Result<WgDeviceStatus>> status(asio::any_io_executor ex);
    asio::awaitable<Result<void>> set_interface(asio::any_io_executor ex, std::string private_key_b64,
                                                std::uint16_t listen_port);
    // Makes the device's peers exactly `peers` (see wg_uapi_sync_peers_request): a get, then one
    // set with only the differences (none when nothing changed).
    asio::awaitable<Result<void>> sync_peers(asio::any_io_executor ex, std::vector<WgPeer> peers,
                                             int persistent_keepalive = 25);

private:
    asio::awaitable<Result<std::string>> exchange(asio::any_io_executor ex, std::string request);

    std::filesystem::path socket_;
    std::chrono::milliseconds timeout_;
};

}  // namespace dstack::net
