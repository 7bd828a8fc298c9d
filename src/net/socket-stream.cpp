// Stream over connected asio stream sockets (TCP and unix).
#include "dstack/net/socket-stream.hpp"

#include <asio/buffer.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>

namespace dstack::net {

namespace {

std::string describe(const asio::ip::tcp::endpoint& endpoint) {
    auto address = endpoint.address();
    if (address.is_v6()) return fmt::format("tcp:[{}]:{}", address.to_string(), endpoint.port());
    return fmt::format("tcp:{}:{}", address.to_string(), endpoint.port());
}

template <typename Socket>
class SocketStream final : public Stream {
public:
    SocketStream(Socket socket, std::string description)
        : socket_(std::move(socket)), description_(std::move(description)) {}

    asio::awaitable<std::size_t> read_some(std::span<std::uint8_t> buffer, std::error_code& ec) override {
        ec.clear();
        if (buffer.empty()) co_return 0;
        std::size_t n = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                                         asio::redirect_error(asio::use_awaitable, ec));
        co_return n;
    }

    asio::awaitable<void> write_all(ByteView data, std::error_code& ec) override {
        ec.clear();
        if (data.empty()) co_return;
        co_await asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                                   asio::redirect_error(asio::use_awaitable, ec));
    }

    asio::awaitable<void> shutdown_send(std::error_code& ec) override {
        ec.clear();
        socket_.shutdown(Socket::shutdown_send, ec);
        co_return;
    }

    void close() override {
        std::error_code ignored;
        socket_.close(ignored);
    }

    asio::any_io_executor get_executor() override { return socket_.get_executor(); }
    std::string peer_description() const override { return description_; }

private:
    Socket socket_;
    // Computed once: the peer address is gone after close, yet logs still want it.
    std::string description_;
};

}  // namespace

StreamPtr make_tcp_stream(asio::ip::tcp::socket socket) {
    std::error_code ec;
    auto peer = socket.remote_endpoint(ec);
    std::string description = ec ? std::string("tcp:?") : describe(peer);
    // Request/response protocols run over these streams: Nagle would add a round trip of delay.
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    return std::make_unique<SocketStream<asio::ip::tcp::socket>>(std::move(socket), std::move(description));
}

StreamPtr make_unix_stream(asio::local::stream_protocol::socket socket) {
    std::error_code ec;
    // Clients of a unix listener are usually unnamed; the listening path is what identifies them.
    std::string path = socket.remote_endpoint(ec).path();
    if (ec || path.empty()) path = socket.local_endpoint(ec).path();
    if (ec) path.clear();
    return make_unix_stream(std::move(socket), "unix:" + path);
}

StreamPtr make_unix_stream(asio::local::stream_protocol::socket socket, std::string description) {
    return std::make_unique<SocketStream<asio::local::stream_protocol::socket>>(std::move(socket),
                                                                               std::move(description));
}

}  // namespace dstack::net
