#include "dstack/net/wireguard-uapi.hpp"

#include <fmt/format.h>

#include "dstack/base/bytes.hpp"
#include "dstack/net/connect.hpp"
#include "dstack/net/stream-watchdog.hpp"

namespace dstack::net {

WireGuardDevice::WireGuardDevice(std::filesystem::path uapi_socket, std::chrono::milliseconds timeout)
    : socket_(std::move(uapi_socket)), timeout_(timeout) {}

asio::awaitable<Result<std::string>> WireGuardDevice::exchange(asio::any_io_executor ex, std::string request) {
    auto connected = co_await connect_unix(ex, socket_, timeout_);
    if (!connected) co_return connected.error().context(fmt::format("WireGuard UAPI {}", socket_.string()));
    std::shared_ptr<Stream> stream(std::move(connected).value());
    // One deadline for the request and its whole reply.
    auto watchdog = std::make_shared<Watchdog>(ex);
    watchdog->guard(stream);
    watchdog->start();
    WatchdogStopper stopper{watchdog};
    watchdog->arm(std::chrono::steady_clock::now() + timeout_);
    std::error_code ec;
    co_await stream->write_all(as_bytes(request), ec);
    // A set_interface request carries the private key: it does not outlive the write.
    wipe({reinterpret_cast<std::uint8_t*>(request.data()), request.size()});
    if (ec) co_return make_error("WireGuard UAPI {}: {}", socket_.string(), ec.message());
    std::string reply;
    std::vector<std::uint8_t> buffer(16 * 1024);
    for (;;) {
        if (std::size_t length = wg_uapi_reply_length(reply); length != 0) {
            reply.resize(length);
            break;
        }
        if (reply.size() > wg_uapi_max_reply_bytes) co_return make_error("WireGuard UAPI {}: reply over {} bytes", socket_.string(), wg_uapi_max_reply_bytes);
        std::size_t n = co_await stream->read_some(buffer, ec);
        if (ec) {
            if (watchdog->fired()) co_return make_error("WireGuard UAPI {}: no reply within {} ms", socket_.string(), timeout_.count());
            co_return make_error("WireGuard UAPI {}: {}", socket_.string(),
                                 ec == asio::error::eof ? "closed before the reply ended" : ec.message());
        }
        reply.append(reinterpret_cast<const char*>(buffer.data()), n);
    }
    stream->close();
    wipe(buffer);  // the last chunk of a get reply may hold the private key
    co_return reply;
}

asio::awaitable<Result<WgDeviceStatus>> WireGuardDevice::status(asio::any_io_executor ex) {
    auto reply = co_await exchange(ex, "get=1\n\n");
    if (!reply) co_return std::move(reply).take_error();
    auto status = parse_wg_uapi_get_reply(*reply);
    // A get reply carries the device's private key.
    wipe({reinterpret_cast<std::uint8_t*>(reply->data()), reply->size()});
    co_return status;
}

asio::awaitable<Result<void>> WireGuardDevice::set_interface(asio::any_io_executor ex, std::string private_key_b64,
                                                             std::uint16_t listen_port) {
    auto request = wg_uapi_set_interface_request(private_key_b64, listen_port);
    if (!request) co_return std::move(request).take_error();
    auto reply = co_await exchange(ex, std::move(*request));
    if (!reply) co_return std::move(reply).take_error();
    co_return parse_wg_uapi_set_reply(*reply);
}

asio::awaitable<Result<void>> WireGuardDevice::sync_peers(asio::any_io_executor ex, std::vector<WgPeer> peers,
                                                          int persistent_keepalive) {
    auto current = co_await status(ex);
    if (!current) co_return std::move(current).take_error();
    auto request = wg_uapi_sync_peers_request(*current, peers, persistent_keepalive);
    if (!request) co_return std::move(request).take_error();
    if (request->empty()) co_return Result<void>();
    auto reply = co_await exchange(ex, std::move(*request));
    if (!reply) co_return std::move(reply).take_error();
    co_return parse_wg_uapi_set_reply(*reply);
}

}  // namespace dstack::net
