// Outgoing TCP, unix and vsock connections, each bounded by a deadline.
#include "dstack/net/connect.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
// After sys/socket.h: linux/vm_sockets.h uses sa_family_t without including it.
#include <linux/vm_sockets.h>

#include <atomic>
#include <memory>
#include <vector>

#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "dstack/net/dns.hpp"
#include "dstack/net/socket-stream.hpp"
#include "dstack/net/vsock-address.hpp"

namespace dstack::net {

namespace {

using Clock = std::chrono::steady_clock;

void set_cloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

std::string host_port(const std::string& host, std::uint16_t port) {
    if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
    return fmt::format("{}:{}", host, port);
}

// What the deadline timer's handler shares with connect_before. The timer lives on the
// coroutine's own executor (its strand), so its handler is serialized with the coroutine; `done`
// is set (on that strand) before the socket can be handed on, and the handler then leaves it
// alone. Atomics keep it sound even on an executor that is not a strand.
template <typename Socket>
struct ConnectWatch {
    std::shared_ptr<Socket> socket;
    std::atomic<bool> done{false};
    std::atomic<bool> expired{false};
};

// Connects `socket` unless the deadline passes first; a timeout is reported as
// asio::error::timed_out.
template <typename Socket>
asio::awaitable<std::error_code> connect_before(std::shared_ptr<Socket> socket,
                                                typename Socket::endpoint_type endpoint, Clock::time_point deadline) {
    std::error_code ec;
    if (Clock::now() >= deadline) co_return asio::error::timed_out;
    socket->open(endpoint.protocol(), ec);
    if (ec) co_return ec;
    set_cloexec(socket->native_handle());
    auto watch = std::make_shared<ConnectWatch<Socket>>();
    watch->socket = socket;
    asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
    timer.async_wait([watch](std::error_code wait_error) {
        if (wait_error || watch->done) return;
        watch->expired = true;
        std::error_code ignored;
        watch->socket->cancel(ignored);
    });
    struct Stop {
        ConnectWatch<Socket>& watch;
        asio::steady_timer& timer;
        ~Stop() {
            watch.done = true;
            timer.cancel();
        }
    };
    {
        Stop stop{*watch, timer};
        co_await socket->async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (watch->expired && (ec == asio::error::operation_aborted || !ec)) {
        std::error_code ignored;
        socket->close(ignored);
        co_return asio::error::timed_out;
    }
    if (ec) {
        std::error_code ignored;
        socket->close(ignored);
    }
    co_return ec;
}

std::string failure_text(std::error_code ec, std::chrono::milliseconds timeout) {
    if (ec == asio::error::timed_out) return fmt::format("timed out after {} ms", timeout.count());
    return ec.message();
}

// Names are resolved A first, then AAAA: most of our peers (KMS, webhooks) are IPv4-only.
asio::awaitable<Result<std::vector<asio::ip::address>>> resolve(asio::any_io_executor executor, std::string host,
                                                               Clock::time_point deadline) {
    std::vector<asio::ip::address> addresses;
    if (host == "localhost") {
        addresses.push_back(asio::ip::address_v4::loopback());
        addresses.push_back(asio::ip::address_v6::loopback());
        co_return addresses;
    }
    dns::Options options;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) co_return make_error("timed out before resolving {}", host);
    options.timeout = std::min(options.timeout, left);
    options.tries = 1;
    std::vector<std::string> errors;
    for (bool v6 : {false, true}) {
        // Not a conditional expression: g++ 12 mishandles co_await inside ?: operands.
        Result<std::vector<std::string>> found = std::vector<std::string>{};
        if (v6)
            found = co_await dns::lookup_aaaa(executor, host, options);
        else
            found = co_await dns::lookup_a(executor, host, options);
        if (!found) {
            errors.push_back(found.error().message);
            continue;
        }
        for (auto& text : *found) {
            std::error_code ec;
            auto address = asio::ip::make_address(text, ec);
            if (!ec) addresses.push_back(address);
        }
    }
    if (addresses.empty()) {
        if (!errors.empty()) co_return Error{errors.front()};
        co_return make_error("{} has no A or AAAA records", host);
    }
    co_return addresses;
}

}  // namespace

asio::awaitable<Result<StreamPtr>> connect_tcp(asio::any_io_executor executor, std::string host, std::uint16_t port,
                                               std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    std::string target = host_port(host, port);
    if (host.empty()) co_return make_error("connect to {}: empty host", target);

    std::vector<asio::ip::address> addresses;
    std::error_code parse_error;
    auto literal = asio::ip::make_address(host, parse_error);
    if (!parse_error) {
        addresses.push_back(literal);
    } else {
        auto resolved = co_await resolve(executor, host, deadline);
        if (!resolved) co_return std::move(resolved).take_error().context(fmt::format("connect to {}", target));
        addresses = std::move(resolved).value();
    }

    std::vector<std::string> failures;
    std::error_code last_error;
    for (auto& address : addresses) {
        auto socket = std::make_shared<asio::ip::tcp::socket>(executor);
        auto ec = co_await connect_before(socket, asio::ip::tcp::endpoint(address, port), deadline);
        if (!ec) co_return make_tcp_stream(std::move(*socket));
        last_error = ec;
        failures.push_back(fmt::format("{}: {}", address.to_string(), failure_text(ec, timeout)));
        if (ec == asio::error::timed_out) break;  // the deadline covers all addresses
    }
    // A literal has one address: the message need not repeat it.
    if (!parse_error) co_return make_error("connect to {}: {}", target, failure_text(last_error, timeout));
    co_return make_error("connect to {}: {}", target, fmt::join(failures, "; "));
}

asio::awaitable<Result<StreamPtr>> connect_unix(asio::any_io_executor executor, std::filesystem::path path,
                                                std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    // asio throws for addresses that do not fit sun_path.
    if (path.string().size() >= sizeof(sockaddr_un::sun_path))
        co_return make_error("connect to unix:{}: path is too long for a unix socket address", path.string());
    auto socket = std::make_shared<asio::local::stream_protocol::socket>(executor);
    auto ec = co_await connect_before(socket, asio::local::stream_protocol::endpoint(path.string()), deadline);
    if (ec) co_return make_error("connect to unix:{}: {}", path.string(), failure_text(ec, timeout));
    std::string description = "unix:" + path.string();
    co_return make_unix_stream(std::move(*socket), std::move(description));
}

asio::awaitable<Result<StreamPtr>> connect_vsock(asio::any_io_executor executor, std::uint32_t cid, std::uint32_t port,
                                                 std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    VsockAddress target(cid, port);
    if (cid == vsock_cid_any || port == vsock_port_any)
        co_return make_error("connect to {}: VMADDR_CID_ANY / VMADDR_PORT_ANY cannot be connected to", target.text());
    sockaddr_vm address{};
    address.svm_family = AF_VSOCK;
    address.svm_cid = cid;
    address.svm_port = port;
    auto socket = std::make_shared<asio::generic::stream_protocol::socket>(executor);
    auto ec = co_await connect_before(socket, asio::generic::stream_protocol::endpoint(&address, sizeof address), deadline);
    if (ec == asio::error::timed_out) co_return make_error("connect to {}: {}", target.text(), failure_text(ec, timeout));
    if (ec) co_return Error{"connect to " + vsock_error_text(target, "connect", ec.value())};
    co_return make_vsock_stream(std::move(*socket));
}

}  // namespace dstack::net
