// Stream over connected asio stream sockets (TCP, unix and vsock).
#include "dstack/net/socket-stream.hpp"

#include <sys/socket.h>
// After sys/socket.h: linux/vm_sockets.h uses sa_family_t without including it.
#include <linux/vm_sockets.h>

#include <algorithm>
#include <optional>
#include <cstring>

#include <asio/buffer.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>

#include "dstack/net/vsock-address.hpp"

namespace dstack::net {

namespace {

std::string describe(const asio::ip::tcp::endpoint& endpoint) {
    auto address = endpoint.address();
    if (address.is_v6()) return fmt::format("tcp:[{}]:{}", address.to_string(), endpoint.port());
    return fmt::format("tcp:{}:{}", address.to_string(), endpoint.port());
}

// The unit a per-client connection limit counts. IPv4: the address. IPv6: its /64, because one
// host is routinely given a whole /64 and could otherwise open each connection from a new
// address; IPv4-mapped IPv6 (a dual-stack listener) counts as the IPv4 address it carries.
std::string client_address_of(const asio::ip::tcp::endpoint& endpoint) {
    auto address = endpoint.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped())
        address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    if (address.is_v4()) return "ip:" + address.to_string();
    auto bytes = address.to_v6().to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return "ip6:" + asio::ip::address_v6(bytes).to_string() + "/64";
}

// A unix socket's peers have no address; the kernel vouches for the peer's credentials instead.
// The uid is the unit: a process can fork new pids at will, but not new uids. (All of one
// user's processes, e.g. every root container of a CVM, therefore share one per-client limit.)
std::string client_address_of(asio::local::stream_protocol::socket& socket) {
    struct ucred credentials{};
    socklen_t size = sizeof credentials;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0 ||
        size != sizeof credentials)
        return {};
    return fmt::format("uid:{}", credentials.uid);
}

std::optional<VsockAddress> vsock_address_of(const asio::generic::stream_protocol::endpoint& endpoint) {
    if (endpoint.size() < sizeof(sockaddr_vm) || endpoint.data()->sa_family != AF_VSOCK) return std::nullopt;
    sockaddr_vm address{};
    std::memcpy(&address, endpoint.data(), sizeof address);
    return VsockAddress(address.svm_cid, address.svm_port);
}

template <typename Socket>
class SocketStream final : public Stream {
public:
    SocketStream(Socket socket, std::string description, std::string client_address)
        : socket_(std::move(socket)), description_(std::move(description)), client_address_(std::move(client_address)) {}

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
    std::string client_address() const override { return client_address_; }

private:
    Socket socket_;
    // Computed once: the peer address is gone after close, yet logs still want it.
    std::string description_;
    std::string client_address_;
};

}  // namespace

StreamPtr make_tcp_stream(asio::ip::tcp::socket socket) {
    std::error_code ec;
    auto peer = socket.remote_endpoint(ec);
    std::string description = ec ? std::string("tcp:?") : describe(peer);
    std::string client = ec ? std::string() : client_address_of(peer);
    // Request/response protocols run over these streams: Nagle would add a round trip of delay.
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    return std::make_unique<SocketStream<asio::ip::tcp::socket>>(std::move(socket), std::move(description),
                                                                 std::move(client));
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
    std::string client = client_address_of(socket);
    return std::make_unique<SocketStream<asio::local::stream_protocol::socket>>(std::move(socket),
                                                                               std::move(description), std::move(client));
}

// A vsock peer is a VM (or the host): its CID is what the hypervisor vouches for, while its port
// is picked per connection; the CID is therefore the unit per-client limits count.
StreamPtr make_vsock_stream(asio::generic::stream_protocol::socket socket) {
    std::error_code ec;
    auto peer = vsock_address_of(socket.remote_endpoint(ec));
    std::string description = (ec || !peer) ? std::string("vsock:?") : peer->text();
    std::string client = (ec || !peer) ? std::string() : fmt::format("cid:{}", peer->cid);
    return std::make_unique<SocketStream<asio::generic::stream_protocol::socket>>(
        std::move(socket), std::move(description), std::move(client));
}

}  // namespace dstack::net
