// AF_VSOCK: address text, error wording, and listen/connect/HTTP over the kernel's vsock.
//
// The round trips use CID 1 (VMADDR_CID_LOCAL), which only a kernel with the vsock_loopback
// transport serves. Where the kernel refuses, those cases are skipped — counted and announced by
// doctest, with the kernel's own answer on stderr — never passed without running.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
// After sys/socket.h: linux/vm_sockets.h uses sa_family_t without including it.
#include <linux/vm_sockets.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>

#include "dstack/net/connect.hpp"
#include "dstack/net/http-client.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/net/vsock-address.hpp"
#include "net-test.hpp"

using namespace dstack;
using namespace dstack::net;
using namespace std::chrono_literals;

namespace {

// What the kernel says to a vsock socket bound at `cid`: empty when it works.
std::string vsock_bind_refusal(std::uint32_t cid) {
    int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return vsock_error_text(VsockAddress(cid, vsock_port_any), "socket", errno);
    sockaddr_vm address{};
    address.svm_family = AF_VSOCK;
    address.svm_cid = cid;
    address.svm_port = vsock_port_any;
    std::string refusal;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        refusal = vsock_error_text(VsockAddress(cid, vsock_port_any), "bind", errno);
    ::close(fd);
    return refusal;
}

// Evaluated once, at start-up, by the skip decorators.
bool kernel_refuses(std::uint32_t cid, const char* what) {
    std::string refusal = vsock_bind_refusal(cid);
    if (refusal.empty()) return false;
    std::fprintf(stderr, "*** SKIPPING %s: the kernel refused: %s ***\n", what, refusal.c_str());
    return true;
}

const bool no_vsock = kernel_refuses(vsock_cid_any, "vsock listener tests");
const bool no_vsock_loopback = kernel_refuses(vsock_cid_local, "vsock loopback round trips (CID 1)");

}  // namespace

TEST_CASE("net vsock: address text, good forms") {
    struct Good {
        std::string text;
        VsockUse use;
        std::uint32_t cid;
        std::uint32_t port;
        std::string canonical;
    };
    std::vector<Good> good = {
        {"any:8000", VsockUse::listen, vsock_cid_any, 8000, "vsock:any:8000"},
        {"4294967295:8000", VsockUse::listen, vsock_cid_any, 8000, "vsock:any:8000"},
        {"3:8000", VsockUse::connect, 3, 8000, "vsock:3:8000"},
        {"2:12000", VsockUse::connect, vsock_cid_host, 12000, "vsock:2:12000"},
        {"1:0", VsockUse::connect, vsock_cid_local, 0, "vsock:1:0"},
        {"0:4294967294", VsockUse::connect, 0, 4294967294u, "vsock:0:4294967294"},
        {"any:4294967295", VsockUse::listen, vsock_cid_any, vsock_port_any, "vsock:any:4294967295"},
    };
    for (auto& g : good) {
        CAPTURE(g.text);
        auto parsed = parse_vsock_address(g.text, "vsock:" + g.text, g.use);
        REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));
        CHECK(parsed->cid == g.cid);
        CHECK(parsed->port == g.port);
        CHECK(parsed->text() == g.canonical);
        // The text parses back to the same address.
        auto again = parse_vsock_address(parsed->text().substr(6), parsed->text(), VsockUse::listen);
        REQUIRE(again.ok());
        CHECK(again->cid == g.cid);
        CHECK(again->port == g.port);
    }
}

TEST_CASE("net vsock: address text, bad forms name what is wrong") {
    struct Bad {
        std::string text;
        VsockUse use;
        std::string expected;
    };
    std::vector<Bad> bad = {
        {"", VsockUse::listen, "expected vsock:CID:PORT"},
        {"3", VsockUse::listen, "expected vsock:CID:PORT"},
        {":8000", VsockUse::listen, "CID '' is not a number"},
        {"x:8000", VsockUse::listen, "CID 'x' is not a number"},
        {"-1:8000", VsockUse::listen, "CID '-1' is not a number"},
        {"+3:8000", VsockUse::listen, "CID '+3' is not a number"},
        {"4294967296:8000", VsockUse::listen, "CID '4294967296' is not a number from 0 to 4294967295"},
        {"99999999999999999999:1", VsockUse::listen, "CID '99999999999999999999'"},
        {"ANY:8000", VsockUse::listen, "CID 'ANY'"},
        {"3:", VsockUse::listen, "port '' is not a number"},
        {"3:80x", VsockUse::listen, "port '80x' is not a number"},
        {"3:4294967296", VsockUse::listen, "port '4294967296' is not a number from 0 to 4294967295"},
        {"3:8000:1", VsockUse::listen, "port '8000:1'"},
        {"3: 8000", VsockUse::listen, "port ' 8000'"},
        {"any:8000", VsockUse::connect, "CID 'any' is for listening"},
        {"4294967295:8000", VsockUse::connect, "VMADDR_CID_ANY"},
        {"3:4294967295", VsockUse::connect, "VMADDR_PORT_ANY"},
    };
    for (auto& b : bad) {
        CAPTURE(b.text);
        auto parsed = parse_vsock_address(b.text, "vsock:" + b.text, b.use);
        REQUIRE_FALSE(parsed.ok());
        CAPTURE(parsed.error().message);
        CHECK(parsed.error().message.starts_with("vsock address 'vsock:" + b.text + "': "));
        CHECK(parsed.error().message.find(b.expected) != std::string::npos);
    }

    // listen_address reports the same, before any socket is made.
    asio::io_context io;
    auto listened = listen_address(io.get_executor(), "vsock:any:http");
    REQUIRE_FALSE(listened.ok());
    CHECK(listened.error().message == "vsock address 'vsock:any:http': port 'http' is not a number from 0 to 4294967295");
}

TEST_CASE("net vsock: kernel refusals are named, not only strerror'd") {
    VsockAddress guest(3, 8000);
    CHECK(vsock_error_text(guest, "socket", EAFNOSUPPORT) ==
          "vsock:3:8000: this kernel has no vsock support (AF_VSOCK: Address family not supported by protocol)");
    CHECK(vsock_error_text(guest, "connect", ENODEV) ==
          "vsock:3:8000: this kernel has no vsock support for CID 3 (AF_VSOCK connect: No such device)");
    CHECK(vsock_error_text(VsockAddress(1, 5), "connect", ENODEV) ==
          "vsock:1:5: this kernel has no vsock loopback transport (load vsock_loopback) (AF_VSOCK connect: No such device)");
    CHECK(vsock_error_text(VsockAddress(1, 5), "bind", EADDRNOTAVAIL).find("load vsock_loopback") != std::string::npos);
    CHECK(vsock_error_text(VsockAddress(7, 5), "bind", EADDRNOTAVAIL) ==
          "vsock:7:5: CID 7 is not a CID of this machine (AF_VSOCK bind: Cannot assign requested address)");
    CHECK(vsock_error_text(VsockAddress(2, 9), "connect", ECONNRESET) == "vsock:2:9: connect: Connection reset by peer");
}

TEST_CASE("net vsock: URLs for the HTTP client") {
    auto url = http::parse_url("vsock://3:8000/api/Info?json");
    REQUIRE(url.ok());
    CHECK(url->endpoint.kind == http::Endpoint::Kind::vsock);
    CHECK(url->endpoint.vsock_cid == 3);
    CHECK(url->endpoint.vsock_port == 8000);
    CHECK(url->target == "/api/Info?json");
    CHECK(url->endpoint.description() == "vsock://3:8000");
    CHECK(url->endpoint.host_header() == "localhost");
    CHECK_FALSE(url->endpoint.tls);

    auto bare = http::parse_url("vsock:2:12000");
    REQUIRE(bare.ok());
    CHECK(bare->endpoint.vsock_cid == 2);
    CHECK(bare->endpoint.vsock_port == 12000);
    CHECK(bare->target == "/");
    auto query = http::parse_url("vsock://2:12000?x");
    REQUIRE(query.ok());
    CHECK(query->target == "/?x");
    // Ports above 65535 are vsock ports like any other.
    auto wide = http::parse_url("vsock://5:100000/");
    REQUIRE(wide.ok());
    CHECK(wide->endpoint.vsock_port == 100000);

    for (const char* bad : {"vsock://any:8000/api", "vsock://3/api", "vsock://x:8000", "vsock://3:8000x/",
                            "vsock://3:4294967295/", "vsock:", "vsock://3:8000/a b"}) {
        CAPTURE(bad);
        auto parsed = http::parse_url(bad);
        CHECK_FALSE(parsed.ok());
    }
    auto named = http::parse_url("vsock://3/api");
    REQUIRE_FALSE(named.ok());
    CHECK(named.error().message.find("expected vsock:CID:PORT") != std::string::npos);

    asio::io_context io;
    auto refused = test::run(io, connect_vsock(io.get_executor(), vsock_cid_any, 1, 1s));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("cannot be connected to") != std::string::npos);
}

TEST_CASE("net vsock: listening on every local CID" * doctest::skip(no_vsock)) {
    asio::io_context io;
    auto listener = listen_address(io.get_executor(), "vsock:any:4294967295");
    REQUIRE_MESSAGE(listener.ok(), (listener.ok() ? "" : listener.error().message));
    std::uint32_t port = (*listener)->local_vsock_port();
    CHECK(port != vsock_port_any);
    CHECK((*listener)->local_port() == 0);
    CHECK((*listener)->description() == fmt::format("vsock:any:{}", port));

    // The port is taken now: a second listener is refused with the kernel's reason.
    auto again = listen_vsock(io.get_executor(), vsock_cid_any, port);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message == fmt::format("listen on vsock:any:{}: bind: Address already in use", port));

    auto by_number = listen_vsock(io.get_executor(), vsock_cid_any, vsock_port_any);
    REQUIRE(by_number.ok());
    CHECK((*by_number)->local_vsock_port() != port);
}

namespace {

// Accepts one connection, writes back what it read with the stream's own view of its peer.
void serve_one_echo(asio::io_context& io, Listener& listener) {
    asio::co_spawn(io, [](Listener& l) -> asio::awaitable<void> {
        std::error_code ec;
        auto stream = co_await l.accept(ec);
        if (!stream) co_return;
        std::string seen = co_await test::read_to_end(*stream, ec);
        std::string reply = seen + "|" + stream->client_address() + "|" + stream->peer_description();
        co_await stream->write_all(as_bytes(reply), ec);
        co_await stream->shutdown_send(ec);
        stream->close();
    }(listener), asio::detached);
}

}  // namespace

TEST_CASE("net vsock: listen, connect and echo over vsock loopback" * doctest::skip(no_vsock_loopback)) {
    asio::io_context io;
    auto listener = listen_vsock(io.get_executor(), vsock_cid_local, vsock_port_any);
    REQUIRE_MESSAGE(listener.ok(), (listener.ok() ? "" : listener.error().message));
    std::uint32_t port = (*listener)->local_vsock_port();
    CHECK((*listener)->description() == fmt::format("vsock:1:{}", port));
    serve_one_echo(io, **listener);

    auto reply = test::run(io, [](std::uint32_t port) -> asio::awaitable<std::string> {
        auto stream = co_await connect_vsock(co_await asio::this_coro::executor, vsock_cid_local, port, 2s);
        REQUIRE_MESSAGE(stream.ok(), (stream.ok() ? "" : stream.error().message));
        CHECK((*stream)->peer_description() == fmt::format("vsock:1:{}", port));
        std::error_code ec;
        co_await (*stream)->write_all(as_bytes(std::string("ping")), ec);
        REQUIRE_FALSE(ec);
        co_await (*stream)->shutdown_send(ec);
        co_return co_await test::read_to_end(**stream, ec);
    }(port), 5s);
    // The server saw our bytes, counted us by our CID, and named our (kernel-chosen) port.
    CHECK(reply.starts_with("ping|cid:1|vsock:1:"));

    // Nobody listens on this port: refused at once, named with the address.
    (*listener)->close();
    auto refused = test::run(io, connect_vsock(io.get_executor(), vsock_cid_local, port, 2s), 5s);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.starts_with(fmt::format("connect to vsock:1:{}: ", port)));
}

TEST_CASE("net vsock: an HTTP request served with http::serve over vsock loopback" * doctest::skip(no_vsock_loopback)) {
    asio::io_context io;
    auto listener = listen_address(io.get_executor(), "vsock:1:4294967295");
    REQUIRE_MESSAGE(listener.ok(), (listener.ok() ? "" : listener.error().message));
    std::uint32_t port = (*listener)->local_vsock_port();
    http::Handler handler = [](http::Request& request, const http::ConnectionInfo& info) -> asio::awaitable<http::Response> {
        co_return http::Response::text(request.method + " " + request.target + " " + request.body + " from " +
                                       info.peer.substr(0, 8) + " on " + info.listener);
    };
    http::ServerOptions options;
    bool served = false;
    asio::co_spawn(io, http::serve(**listener, handler, options), [&served](std::exception_ptr) { served = true; });

    std::string url = fmt::format("vsock://1:{}/api/Info?json", port);
    http::ClientOptions client;
    client.connect_timeout = 2s;
    client.total_timeout = 4s;
    auto response = test::run(io, http::post(io.get_executor(), url, "{}", "application/json", client), 5s);
    REQUIRE_MESSAGE(response.ok(), (response.ok() ? "" : response.error().message));
    CHECK(response->status == 200);
    CHECK(response->body == fmt::format("POST /api/Info?json {{}} from vsock:1: on vsock:1:{}", port));
    // serve() returns once its listener is closed (run_for ends early when no work is left).
    (*listener)->close();
    io.restart();
    io.run_for(2s);
    CHECK(served);
}

TEST_CASE("net vsock: a vsock socket passed by systemd is adopted" * doctest::skip(no_vsock)) {
    // fd 3 belongs to the test process, so the activation is staged in a child (as in test-socket).
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        int fd = ::socket(AF_VSOCK, SOCK_STREAM, 0);
        sockaddr_vm address{};
        address.svm_family = AF_VSOCK;
        address.svm_cid = vsock_cid_any;
        address.svm_port = vsock_port_any;
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 4) != 0)
            ::_exit(10);
        socklen_t length = sizeof address;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) ::_exit(11);
        int high = ::fcntl(fd, F_DUPFD, 100);
        if (high < 0 || ::dup2(high, 3) != 3) ::_exit(12);
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        ::setenv("LISTEN_FDS", "1", 1);
        asio::io_context io;
        auto adopted = listen_address(io.get_executor(), "systemd:0");
        if (!adopted.ok()) ::_exit(13);
        if ((*adopted)->description() != fmt::format("systemd:0 (vsock:any:{})", address.svm_port)) ::_exit(14);
        if ((*adopted)->local_vsock_port() != address.svm_port) ::_exit(15);
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK_MESSAGE(WEXITSTATUS(status) == 0, "child failed at step " << WEXITSTATUS(status));
}
