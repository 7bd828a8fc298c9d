// The HTTP server over a real unix socket and io_context: keep-alive, framing, errors, timeouts.
#include <doctest/doctest.h>

#include <unistd.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <fmt/format.h>

#include "dstack/net/connect.hpp"
#include "dstack/net/http-client.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/net/socket-stream.hpp"
#include "net-test.hpp"

using namespace dstack;
using namespace dstack::net;
using namespace std::chrono_literals;

namespace {

asio::awaitable<http::Response> test_handler(http::Request& request, const http::ConnectionInfo& info) {
    if (request.path == "/hello") co_return http::Response::text("hello");
    if (request.path == "/echo") {
        auto r = http::Response::text(request.body);
        r.headers.add("X-Method", request.method);
        co_return r;
    }
    if (request.path == "/throw") throw std::runtime_error("handler bug");
    if (request.path == "/hang") {  // a handler waiting on a slow upstream
        asio::steady_timer forever(co_await asio::this_coro::executor, std::chrono::hours(1));
        std::error_code ignored;
        co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        co_return http::Response::text("late");
    }
    if (request.path == "/peer") co_return http::Response::text(info.peer + "|" + info.listener);
    if (request.path == "/close") {
        auto r = http::Response::text("bye");
        r.headers.add("Connection", "close");
        co_return r;
    }
    if (request.path == "/bad-header") {
        auto r = http::Response::text("x");
        r.headers.add("X-Injected", "a\r\nSet-Cookie: evil");
        r.headers.add("Content-Length", "999");
        co_return r;
    }
    co_return http::Response::json_error(404, "not found");
}

struct ServerFixture {
    asio::io_context io;
    test::TempDir dir;
    std::filesystem::path socket_path = dir.path / "http.sock";
    ListenerPtr listener;

    explicit ServerFixture(http::ServerOptions options = {}) {
        auto listening = listen_unix(io.get_executor(), socket_path, 0600);
        REQUIRE(listening.ok());
        listener = std::move(*listening);
        asio::co_spawn(io, http::serve(*listener, test_handler, options), asio::detached);
    }
    ~ServerFixture() { listener->close(); }

    // Sends raw bytes, optionally half-closes, then reads until the server closes.
    std::string exchange(std::string raw, bool half_close = true, std::chrono::milliseconds limit = 5s) {
        return test::run(io, [](std::filesystem::path path, std::string raw, bool half_close) -> asio::awaitable<std::string> {
            auto stream = co_await connect_unix(co_await asio::this_coro::executor, path, 2s);
            REQUIRE(stream.ok());
            std::error_code ec;
            co_await (*stream)->write_all(as_bytes(raw), ec);
            if (half_close) co_await (*stream)->shutdown_send(ec);
            ec.clear();
            auto out = co_await test::read_to_end(**stream, ec);
            co_return out;
        }(socket_path, std::move(raw), half_close), limit);
    }
};

std::size_t count(std::string_view text, std::string_view needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("net http server: GET with the client, Content-Length and Date always set") {
    ServerFixture server;
    auto response = test::run(server.io, http::get(server.io.get_executor(), "unix:" + server.socket_path.string()));
    REQUIRE(response.ok());
    CHECK(response->status == 404);

    auto url = "http+unix://" + server.socket_path.string() + "/hello";
    // The path needs percent-encoding inside http+unix://.
    std::string encoded;
    for (char c : server.socket_path.string()) encoded += c == '/' ? std::string("%2F") : std::string(1, c);
    auto hello = test::run(server.io, http::get(server.io.get_executor(), "http+unix://" + encoded + "/hello"));
    REQUIRE(hello.ok());
    CHECK(hello->status == 200);
    CHECK(hello->body == "hello");
    CHECK(*hello->headers.get("content-length") == "5");
    CHECK(hello->headers.contains("Date"));
    CHECK_FALSE(hello->headers.contains("Transfer-Encoding"));

    http::Request request;
    request.method = "GET";
    request.target = "/peer";
    auto peer = test::run(server.io, http::send_request(server.io.get_executor(),
                                                        http::Endpoint::unix_socket(server.socket_path), request));
    REQUIRE(peer.ok());
    CHECK(peer->body.find("unix:") == 0);
    CHECK(peer->body.find("|unix:") != std::string::npos);
}

TEST_CASE("net http server: keep-alive, pipelining and close on client EOF") {
    ServerFixture server;
    auto out = server.exchange(
        "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n");
    CHECK(count(out, "HTTP/1.1 200 OK\r\n") == 3);
    CHECK(out.find("\r\n\r\nhello") != std::string::npos);
    CHECK(out.find("Content-Length: 4\r\n") != std::string::npos);
    CHECK(out.find("\r\n\r\nabcd") != std::string::npos);
    CHECK(out.find("\r\n\r\nxyz") != std::string::npos);
    CHECK(out.find("Connection: close") == std::string::npos);
}

TEST_CASE("net http server: HTTP/1.0, Connection: close and handler-requested close") {
    ServerFixture server;
    // No half-close: the server must end the connection by itself.
    auto old = server.exchange("GET /hello HTTP/1.0\r\n\r\nGET /hello HTTP/1.0\r\n\r\n", false);
    CHECK(count(old, "HTTP/1.1 200") == 1);
    CHECK(old.find("Connection: close\r\n") != std::string::npos);

    auto old_keep = server.exchange("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                    "GET /hello HTTP/1.0\r\n\r\n", false);
    CHECK(count(old_keep, "HTTP/1.1 200") == 2);
    CHECK(old_keep.find("Connection: keep-alive\r\n") != std::string::npos);

    auto close = server.exchange("GET /hello HTTP/1.1\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\n\r\n", false);
    CHECK(count(close, "HTTP/1.1 200") == 1);

    auto by_handler = server.exchange("GET /close HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n", false);
    CHECK(count(by_handler, "HTTP/1.1 200") == 1);
    CHECK(by_handler.find("Connection: close\r\n") != std::string::npos);
}

TEST_CASE("net http server: HEAD, Expect 100-continue, handler exceptions, unsafe headers") {
    ServerFixture server;
    auto head = server.exchange("HEAD /hello HTTP/1.1\r\n\r\n");
    CHECK(head.find("Content-Length: 5\r\n") != std::string::npos);
    CHECK(head.size() == head.find("\r\n\r\n") + 4);

    // The body is sent only after the interim response, as clients that ask for it do.
    auto expect = test::run(server.io, [](std::filesystem::path path) -> asio::awaitable<std::string> {
        auto stream = co_await connect_unix(co_await asio::this_coro::executor, path, 2s);
        REQUIRE(stream.ok());
        std::error_code ec;
        std::string head = "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        co_await (*stream)->write_all(as_bytes(head), ec);
        std::uint8_t buffer[256];
        std::size_t n = co_await (*stream)->read_some(buffer, ec);
        std::string interim(reinterpret_cast<const char*>(buffer), n);
        CHECK(interim == "HTTP/1.1 100 Continue\r\n\r\n");
        co_await (*stream)->write_all(as_bytes(std::string("ok")), ec);
        co_await (*stream)->shutdown_send(ec);
        co_return co_await test::read_to_end(**stream, ec);
    }(server.socket_path));
    CHECK(expect.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(expect.find("\r\n\r\nok") != std::string::npos);
    // With the body already there, no interim response is needed.
    auto eager = server.exchange("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok");
    CHECK(eager.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);

    auto thrown = server.exchange("GET /throw HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    CHECK(thrown.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
    CHECK(thrown.find("hello") != std::string::npos);  // the connection went on

    auto bad = server.exchange("GET /bad-header HTTP/1.1\r\n\r\n");
    CHECK(bad.find("Set-Cookie") == std::string::npos);
    CHECK(bad.find("Content-Length: 1\r\n") != std::string::npos);
    CHECK(bad.find("999") == std::string::npos);
}

TEST_CASE("net http server: parse errors answer once and close") {
    ServerFixture server;
    auto malformed = server.exchange("NONSENSE\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    CHECK(malformed.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK(malformed.find("Connection: close\r\n") != std::string::npos);
    CHECK(malformed.find("\"error\"") != std::string::npos);
    CHECK(count(malformed, "HTTP/1.1") == 1);

    auto version = server.exchange("GET / HTTP/2.0\r\n\r\n");
    CHECK(version.rfind("HTTP/1.1 505 ", 0) == 0);
    auto encoding = server.exchange("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
    CHECK(encoding.rfind("HTTP/1.1 501 ", 0) == 0);
    auto headers = server.exchange("GET / HTTP/1.1\r\nBig: " + std::string(20000, 'x') + "\r\n\r\n");
    CHECK(headers.rfind("HTTP/1.1 431 ", 0) == 0);

    // 413 before the body is sent: the server answers on the headers alone.
    auto big = server.exchange("POST /echo HTTP/1.1\r\nContent-Length: 104857600\r\n\r\n", false);
    CHECK(big.rfind("HTTP/1.1 413 ", 0) == 0);
}

TEST_CASE("net http server: timeouts cut off idle and slow clients") {
    http::ServerOptions options;
    options.idle_timeout = 200ms;
    options.header_timeout = 300ms;
    options.body_timeout = 300ms;
    options.min_body_rate = 1'000'000;
    ServerFixture server(options);

    auto started = std::chrono::steady_clock::now();
    CHECK(server.exchange("", false).empty());
    auto idle = std::chrono::steady_clock::now() - started;
    CHECK(idle >= 150ms);
    CHECK(idle < 3s);

    // Header bytes trickling in: cut off by the header deadline, no response.
    auto slow_headers = test::run(server.io, [](std::filesystem::path path) -> asio::awaitable<std::string> {
        auto stream = co_await connect_unix(co_await asio::this_coro::executor, path, 2s);
        REQUIRE(stream.ok());
        std::error_code ec;
        std::string request = "GET /hello HTTP/1.1\r\nX: ";
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (int i = 0; i < 20 && !ec; ++i) {
            co_await (*stream)->write_all(as_bytes(std::string(1, 'a')), ec);
            timer.expires_after(50ms);
            co_await timer.async_wait(asio::use_awaitable);
        }
        ec.clear();
        co_return co_await test::read_to_end(**stream, ec);
    }(server.socket_path));
    CHECK(slow_headers.empty());

    // A body far slower than min_body_rate: cut off by the body deadline.
    auto started_body = std::chrono::steady_clock::now();
    auto slow_body = test::run(server.io, [](std::filesystem::path path) -> asio::awaitable<std::string> {
        auto stream = co_await connect_unix(co_await asio::this_coro::executor, path, 2s);
        REQUIRE(stream.ok());
        std::error_code ec;
        co_await (*stream)->write_all(as_bytes(std::string("POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n")), ec);
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (int i = 0; i < 40 && !ec; ++i) {
            co_await (*stream)->write_all(as_bytes(std::string(1, 'a')), ec);
            timer.expires_after(50ms);
            co_await timer.async_wait(asio::use_awaitable);
        }
        ec.clear();
        co_return co_await test::read_to_end(**stream, ec);
    }(server.socket_path));
    CHECK(slow_body.empty());
    CHECK(std::chrono::steady_clock::now() - started_body < 3s);
}

TEST_CASE("net http server: the connection limit refuses with 503") {
    http::ServerOptions options;
    options.max_connections = 1;
    options.idle_timeout = 2s;
    ServerFixture server(options);
    auto result = test::run(server.io, [](std::filesystem::path path) -> asio::awaitable<std::string> {
        auto executor = co_await asio::this_coro::executor;
        auto first = co_await connect_unix(executor, path, 2s);
        REQUIRE(first.ok());
        // Busy with a request (an idle one would be closed to make room for the second).
        std::error_code ec;
        co_await (*first)->write_all(as_bytes(std::string("GET /hello HTTP/1.1\r\n")), ec);
        // Let the server accept the first one before the second arrives.
        asio::steady_timer timer(executor, 100ms);
        co_await timer.async_wait(asio::use_awaitable);
        auto second = co_await connect_unix(executor, path, 2s);
        REQUIRE(second.ok());
        auto refused = co_await test::read_to_end(**second, ec);
        (*first)->close();
        co_return refused;
    }(server.socket_path));
    CHECK(result.rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(result.find("too many connections") != std::string::npos);
    // Once the first connection is gone, a new one is served.
    auto later = test::run(server.io, [](asio::io_context& io, std::string url) -> asio::awaitable<int> {
        asio::steady_timer timer(io, 100ms);
        co_await timer.async_wait(asio::use_awaitable);
        auto response = co_await http::get(io.get_executor(), url);
        co_return response ? response->status : 0;
    }(server.io, "unix:" + server.socket_path.string()));
    CHECK(later == 404);
}

TEST_CASE("net http server: serialize_response_head") {
    http::Response r = http::Response::text("abc", 201);
    r.reason = "Made";
    auto head = http::serialize_response_head(r, 3, true);
    CHECK(head.rfind("HTTP/1.1 201 Made\r\n", 0) == 0);
    CHECK(head.find("Content-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
    CHECK(head.find("Content-Length: 3\r\nConnection: close\r\n\r\n") != std::string::npos);
}

TEST_CASE("net http server: a server-wide budget bounds request bodies in flight") {
    http::ServerOptions options;
    options.max_total_body_bytes = 100;
    ServerFixture server(options);

    auto small = server.exchange("POST /echo HTTP/1.1\r\nContent-Length: 50\r\n\r\n" + std::string(50, 'a'));
    CHECK(small.rfind("HTTP/1.1 200 ", 0) == 0);

    // Refused once the bytes received go over (not on the declared length: see the next test).
    auto declared = server.exchange("POST /echo HTTP/1.1\r\nContent-Length: 200\r\n\r\n" + std::string(150, 'a'), false);
    CHECK(declared.rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(declared.find("application/json") != std::string::npos);
    CHECK(declared.find("Connection: close") != std::string::npos);

    // Chunked bodies are charged as they grow.
    std::string chunked = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 4; ++i) chunked += "28\r\n" + std::string(40, 'b') + "\r\n";
    chunked += "0\r\n\r\n";
    auto grown = server.exchange(chunked);
    CHECK(grown.rfind("HTTP/1.1 503 ", 0) == 0);

    // Completed and refused requests gave their bytes back.
    auto again = server.exchange("POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'c'));
    CHECK(again.rfind("HTTP/1.1 200 ", 0) == 0);
}

TEST_CASE("net http server: reason phrase and Connection values are checked for CR/LF") {
    http::Response response = http::Response::text("x");
    response.reason = "OK\r\nSet-Cookie: evil";
    response.headers.add("Connection", "keep-alive\r\nX-Evil: 1");
    auto head = http::serialize_response_head(response, 1, false);
    CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(head.find("evil") == std::string::npos);
    CHECK(head.find("X-Evil") == std::string::npos);
}

// ---- resource limits: budget charged as received, per-address limit, eviction, deadlines ----

namespace {

// A TCP server on 127.0.0.1; clients pick their source address anywhere in 127/8 (all loopback),
// so one test can play several client addresses.
struct TcpServerFixture {
    asio::io_context io;
    ListenerPtr listener;
    std::uint16_t port = 0;

    explicit TcpServerFixture(http::ServerOptions options) {
        auto listening = listen_tcp(io.get_executor(), "127.0.0.1", 0);
        REQUIRE(listening.ok());
        listener = std::move(*listening);
        port = listener->local_port();
        asio::co_spawn(io, http::serve(*listener, test_handler, options), asio::detached);
    }
    ~TcpServerFixture() { listener->close(); }
};

asio::awaitable<StreamPtr> connect_from(std::string source, std::uint16_t port) {
    asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
    socket.open(asio::ip::tcp::v4());
    socket.bind(asio::ip::tcp::endpoint(asio::ip::make_address(source), 0));
    co_await socket.async_connect(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), port), asio::use_awaitable);
    co_return make_tcp_stream(std::move(socket));
}

asio::awaitable<StreamPtr> connect_stream_tcp(std::string host, std::uint16_t port) {
    auto stream = co_await connect_tcp(co_await asio::this_coro::executor, host, port, 2s);
    REQUIRE(stream.ok());
    co_return std::move(*stream);
}

asio::awaitable<StreamPtr> connect_stream_unix(std::filesystem::path path) {
    auto stream = co_await connect_unix(co_await asio::this_coro::executor, path, 2s);
    REQUIRE(stream.ok());
    co_return std::move(*stream);
}

asio::awaitable<void> send(Stream& stream, std::string bytes) {
    std::error_code ec;
    co_await stream.write_all(as_bytes(bytes), ec);
    REQUIRE_FALSE(ec);
}

asio::awaitable<void> pause(std::chrono::milliseconds delay) {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::use_awaitable);
}

// One request with "Connection: close" on a connection that may have waited; its response.
asio::awaitable<std::string> request_and_close(Stream& stream, std::string target) {
    std::error_code ec;
    co_await stream.write_all(as_bytes("GET " + target + " HTTP/1.1\r\nConnection: close\r\n\r\n"), ec);
    if (ec) co_return std::string();
    co_return co_await test::read_to_end(stream, ec);
}

// Reads until the server ends the connection (or `limit` passes: then "timeout"); returns what
// came and how long it took.
asio::awaitable<std::pair<std::string, std::chrono::milliseconds>> wait_for_close(Stream& stream) {
    auto started = std::chrono::steady_clock::now();
    std::error_code ec;
    auto out = co_await test::read_to_end(stream, ec);
    co_return std::pair(out, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started));
}

}  // namespace

TEST_CASE("net http server: client_address of accepted connections: IPv4 address, IPv6 /64, unix peer uid") {
    asio::io_context io;
    // What the server side of a connection says about its client.
    auto accepted_address = [&](ListenerPtr& listener, auto connect) {
        return test::run(io, [](Listener& listener, decltype(connect) connect) -> asio::awaitable<std::string> {
            auto client = co_await connect();
            std::error_code ec;
            auto accepted = co_await listener.accept(ec);
            REQUIRE(accepted);
            co_return accepted->client_address();
        }(*listener, connect));
    };
    auto tcp = listen_tcp(io.get_executor(), "127.0.0.1", 0);
    REQUIRE(tcp.ok());
    std::uint16_t port = (*tcp)->local_port();
    CHECK(accepted_address(*tcp, [port] { return connect_from("127.0.0.2", port); }) == "ip:127.0.0.2");

    auto v6 = listen_tcp(io.get_executor(), "::1", 0);
    if (v6.ok()) {
        std::uint16_t v6_port = (*v6)->local_port();
        auto address = accepted_address(*v6, [v6_port] { return connect_stream_tcp("::1", v6_port); });
        CHECK(address == "ip6:::/64");  // ::1's /64 is ::/64
    }

    test::TempDir dir;
    auto path = dir.path / "peer.sock";
    auto unix_listener = listen_unix(io.get_executor(), path, 0600);
    REQUIRE(unix_listener.ok());
    auto uid = accepted_address(*unix_listener, [path] { return connect_stream_unix(path); });
    CHECK(uid == fmt::format("uid:{}", ::getuid()));
}

TEST_CASE("net http server: the request-body budget is charged for bytes received, not declared") {
    http::ServerOptions options;
    options.max_total_body_bytes = 1000;
    options.body_timeout = 5s;
    ServerFixture server(options);
    auto out = test::run(server.io, [](std::filesystem::path path) -> asio::awaitable<std::vector<std::string>> {
        auto executor = co_await asio::this_coro::executor;
        // Three clients announce 400 bytes each (1200 declared, over the budget) and send 10.
        std::vector<StreamPtr> announcers;
        for (int i = 0; i < 3; ++i) {
            auto stream = co_await connect_unix(executor, path, 2s);
            REQUIRE(stream.ok());
            co_await send(**stream, "POST /echo HTTP/1.1\r\nContent-Length: 400\r\n\r\n" + std::string(10, 'x'));
            announcers.push_back(std::move(*stream));
        }
        co_await pause(100ms);
        // They hold 30 bytes: a 300-byte body from someone else fits.
        auto other = co_await connect_unix(executor, path, 2s);
        REQUIRE(other.ok());
        co_await send(**other, "POST /echo HTTP/1.1\r\nConnection: close\r\nContent-Length: 300\r\n\r\n" +
                                   std::string(300, 'y'));
        std::error_code ec;
        std::vector<std::string> results;
        results.push_back(co_await test::read_to_end(**other, ec));
        // And an announcer that does send its body is served, not refused.
        co_await send(*announcers[0], std::string(390, 'x'));
        co_await announcers[0]->shutdown_send(ec);
        results.push_back(co_await test::read_to_end(*announcers[0], ec));
        co_return results;
    }(server.socket_path));
    REQUIRE(out.size() == 2);
    CHECK(out[0].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[0].find("\r\n\r\n" + std::string(300, 'y')) != std::string::npos);
    CHECK(out[1].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[1].find("Content-Length: 400\r\n") != std::string::npos);
}

TEST_CASE("net http server: connections per client address are limited without affecting other addresses") {
    http::ServerOptions options;
    options.max_connections_per_address = 2;
    options.idle_timeout = 5s;
    options.header_timeout = 5s;
    TcpServerFixture server(options);
    auto out = test::run(server.io, [](std::uint16_t port) -> asio::awaitable<std::vector<std::string>> {
        // 127.0.0.2 holds its two: one idle, one with half a request header.
        auto idle = co_await connect_from("127.0.0.2", port);
        auto partial = co_await connect_from("127.0.0.2", port);
        co_await send(*partial, "GET /hello HTTP/1.1\r\n");
        co_await pause(100ms);
        std::vector<std::string> results;
        std::error_code ec;
        // Its third is refused.
        auto third = co_await connect_from("127.0.0.2", port);
        results.push_back(co_await test::read_to_end(*third, ec));
        // Another address is served meanwhile.
        auto other = co_await connect_from("127.0.0.1", port);
        results.push_back(co_await request_and_close(*other, "/hello"));
        // And the two held ones still work.
        results.push_back(co_await request_and_close(*idle, "/hello"));
        co_await send(*partial, "Connection: close\r\n\r\n");
        results.push_back(co_await test::read_to_end(*partial, ec));
        // Once they are gone, the address may connect again.
        co_await pause(100ms);
        auto again = co_await connect_from("127.0.0.2", port);
        results.push_back(co_await request_and_close(*again, "/hello"));
        co_return results;
    }(server.port));
    REQUIRE(out.size() == 5);
    CHECK(out[0].rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(out[0].find("too many connections from your address") != std::string::npos);
    for (std::size_t i = 1; i < out.size(); ++i) {
        CAPTURE(i);
        CHECK(out[i].rfind("HTTP/1.1 200 ", 0) == 0);
        CHECK(out[i].find("\r\n\r\nhello") != std::string::npos);
    }
}

TEST_CASE("net http server: on a unix socket the per-address limit counts the peer's uid") {
    http::ServerOptions options;
    options.max_connections_per_address = 2;
    ServerFixture server(options);
    auto refused = test::run(server.io, [](std::filesystem::path path) -> asio::awaitable<std::string> {
        auto executor = co_await asio::this_coro::executor;
        auto first = co_await connect_unix(executor, path, 2s);
        auto second = co_await connect_unix(executor, path, 2s);
        REQUIRE((first.ok() && second.ok()));
        co_await pause(100ms);
        auto third = co_await connect_unix(executor, path, 2s);
        REQUIRE(third.ok());
        std::error_code ec;
        co_return co_await test::read_to_end(**third, ec);
    }(server.socket_path));
    CHECK(refused.rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(refused.find("too many connections from your address") != std::string::npos);
}

TEST_CASE("net http server: when full, the connection idle longest makes room for a new one") {
    http::ServerOptions options;
    options.max_connections = 2;
    options.max_connections_per_address = 0;
    options.idle_timeout = 5s;
    TcpServerFixture server(options);
    auto out = test::run(server.io, [](std::uint16_t port) -> asio::awaitable<std::vector<std::string>> {
        std::vector<std::string> results;
        std::error_code ec;
        // A connects, then B; A has a request answered (keep-alive), so B has waited longest.
        auto a = co_await connect_from("127.0.0.2", port);
        co_await pause(50ms);
        auto b = co_await connect_from("127.0.0.3", port);
        co_await pause(50ms);
        co_await send(*a, "GET /hello HTTP/1.1\r\n\r\n");
        std::uint8_t buffer[4096];
        std::size_t n = co_await a->read_some(buffer, ec);
        results.emplace_back(reinterpret_cast<const char*>(buffer), n);
        co_await pause(50ms);
        // C arrives at a full server and is served; B is closed to make room, unanswered.
        auto c = co_await connect_from("127.0.0.4", port);
        results.push_back(co_await request_and_close(*c, "/hello"));
        auto [b_rest, b_waited] = co_await wait_for_close(*b);
        results.push_back(b_rest);
        CHECK(b_waited < 2s);  // closed by the eviction, not by the 5 s idle timeout
        // A was kept: it still works.
        results.push_back(co_await request_and_close(*a, "/hello"));
        co_return results;
    }(server.port));
    REQUIRE(out.size() == 4);
    CHECK(out[0].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[1].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[2].empty());
    CHECK(out[3].rfind("HTTP/1.1 200 ", 0) == 0);
}

TEST_CASE("net http server: when full and no connection is idle, a new one is refused") {
    http::ServerOptions options;
    options.max_connections = 2;
    options.max_connections_per_address = 0;
    options.header_timeout = 5s;
    TcpServerFixture server(options);
    auto out = test::run(server.io, [](std::uint16_t port) -> asio::awaitable<std::vector<std::string>> {
        std::vector<std::string> results;
        std::error_code ec;
        // Both busy: one in the middle of its header, one in the middle of its body.
        auto header = co_await connect_from("127.0.0.2", port);
        co_await send(*header, "GET /hello HTTP/1.1\r\n");
        auto body = co_await connect_from("127.0.0.3", port);
        co_await send(*body, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nab");
        co_await pause(100ms);
        auto refused = co_await connect_from("127.0.0.4", port);
        results.push_back(co_await test::read_to_end(*refused, ec));
        // Neither busy connection was disturbed.
        co_await send(*header, "Connection: close\r\n\r\n");
        results.push_back(co_await test::read_to_end(*header, ec));
        co_await send(*body, "cd");
        co_await body->shutdown_send(ec);
        results.push_back(co_await test::read_to_end(*body, ec));
        co_return results;
    }(server.port));
    REQUIRE(out.size() == 3);
    CHECK(out[0].rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(out[0].find("too many connections") != std::string::npos);
    CHECK(out[1].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[2].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[2].find("\r\n\r\nabcd") != std::string::npos);
}

TEST_CASE("net http server: with evict_stalled_headers_after, a stalled header makes room; a body in progress does not") {
    http::ServerOptions options;
    options.max_connections = 2;
    options.max_connections_per_address = 0;
    options.header_timeout = 5s;
    options.evict_stalled_headers_after = 200ms;
    TcpServerFixture server(options);
    auto out = test::run(server.io, [](std::uint16_t port) -> asio::awaitable<std::vector<std::string>> {
        std::vector<std::string> results;
        std::error_code ec;
        auto header = co_await connect_from("127.0.0.2", port);
        co_await send(*header, "GET /hello HTTP/1.1\r\n");
        auto body = co_await connect_from("127.0.0.3", port);
        co_await send(*body, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nab");
        co_await pause(400ms);
        // The header stalled for 400 ms > 200 ms: closed to make room for the new connection.
        auto admitted = co_await connect_from("127.0.0.4", port);
        co_await send(*admitted, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
        results.push_back(co_await test::read_to_end(*admitted, ec));
        results.push_back(co_await test::read_to_end(*header, ec));
        // The body in progress was not disturbed.
        co_await send(*body, "cd");
        co_await body->shutdown_send(ec);
        results.push_back(co_await test::read_to_end(*body, ec));
        co_return results;
    }(server.port));
    REQUIRE(out.size() == 3);
    CHECK(out[0].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[1].empty());
    CHECK(out[2].find("\r\n\r\nabcd") != std::string::npos);
}

TEST_CASE("net http server: read deadlines: idle keep-alive, a stalled header, empty lines") {
    http::ServerOptions options;
    options.idle_timeout = 1s;
    options.header_timeout = 600ms;
    ServerFixture server(options);
    auto out = test::run(server.io, [](std::filesystem::path path) -> asio::awaitable<std::vector<std::pair<std::string, std::chrono::milliseconds>>> {
        auto executor = co_await asio::this_coro::executor;
        std::vector<std::pair<std::string, std::chrono::milliseconds>> results;
        std::error_code ec;
        // A keep-alive connection after its response: closed once idle_timeout has passed.
        auto keep = co_await connect_unix(executor, path, 2s);
        REQUIRE(keep.ok());
        co_await send(**keep, "GET /hello HTTP/1.1\r\n\r\n");
        results.push_back(co_await wait_for_close(**keep));
        // Half a header, then nothing: closed once header_timeout has passed, unanswered.
        auto stalled = co_await connect_unix(executor, path, 2s);
        REQUIRE(stalled.ok());
        co_await send(**stalled, "GET /hello HTTP/1.1\r\nHost: x");
        results.push_back(co_await wait_for_close(**stalled));
        // Empty lines (tolerated before a request) every 400 ms do not extend the idle deadline.
        auto blank = co_await connect_unix(executor, path, 2s);
        REQUIRE(blank.ok());
        auto started = std::chrono::steady_clock::now();
        for (int i = 0; i < 4 && !ec; ++i) {
            co_await pause(400ms);
            co_await (*blank)->write_all(as_bytes(std::string("\r\n")), ec);
        }
        auto [rest, waited] = co_await wait_for_close(**blank);
        results.emplace_back(rest, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started));
        co_return results;
    }(server.socket_path), 20s);
    REQUIRE(out.size() == 3);
    CHECK(out[0].first.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[0].second >= 800ms);
    CHECK(out[0].second < 2500ms);
    CHECK(out[1].first.empty());
    CHECK(out[1].second >= 400ms);
    CHECK(out[1].second < 2000ms);
    CHECK(out[2].first.empty());
    CHECK(out[2].second < 1800ms);  // with the deadline re-armed by each line: about 2.6 s
}

namespace {

asio::awaitable<void> serve_and_flag(Listener& listener, http::ServerOptions options, bool* returned) {
    co_await http::serve(listener, test_handler, options);
    *returned = true;
}

// A TCP server whose serve() call says when it has returned (after its listener is closed).
struct StoppableServer {
    explicit StoppableServer(http::ServerOptions options) {
        auto listening = listen_tcp(io.get_executor(), "127.0.0.1", 0);
        REQUIRE(listening.ok());
        listener = std::move(*listening);
        port = listener->local_port();
        asio::co_spawn(io, serve_and_flag(*listener, options, &returned), asio::detached);
    }
    asio::io_context io;
    ListenerPtr listener;
    std::uint16_t port = 0;
    bool returned = false;
};

}  // namespace

TEST_CASE("net http server: closing the listener stops gracefully: idle connections closed, requests in flight answered") {
    http::ServerOptions options;
    options.idle_timeout = 5s;
    StoppableServer server(options);
    auto out = test::run(server.io, [](std::uint16_t port, Listener* listener, bool* returned) -> asio::awaitable<std::vector<std::string>> {
        std::vector<std::string> results;
        std::error_code ec;
        // idle: one answered request, kept alive. busy: half a body sent when the stop comes.
        auto idle = co_await connect_from("127.0.0.1", port);
        co_await send(*idle, "GET /hello HTTP/1.1\r\n\r\n");
        std::uint8_t buffer[4096];
        std::size_t n = co_await idle->read_some(buffer, ec);
        results.emplace_back(reinterpret_cast<const char*>(buffer), n);
        auto busy = co_await connect_from("127.0.0.1", port);
        co_await send(*busy, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345");
        co_await pause(100ms);
        listener->close();
        auto [idle_rest, idle_waited] = co_await wait_for_close(*idle);
        results.push_back(idle_rest);
        CHECK(idle_waited < 2s);  // closed by the stop, not by the 5 s idle timeout
        CHECK_FALSE(*returned);   // the busy connection is still being served
        co_await send(*busy, "67890");
        ec.clear();
        results.push_back(co_await test::read_to_end(*busy, ec));
        for (int i = 0; i < 100 && !*returned; ++i) co_await pause(10ms);
        results.push_back(*returned ? "returned" : "still serving");
        // No new connection is accepted.
        auto refused = co_await connect_tcp(co_await asio::this_coro::executor, "127.0.0.1", port, 1s);
        results.push_back(refused.ok() ? "accepted" : "refused");
        co_return results;
    }(server.port, server.listener.get(), &server.returned));
    REQUIRE(out.size() == 5);
    CHECK(out[0].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[1].empty());
    CHECK(out[2].rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(out[2].find("Connection: close\r\n") != std::string::npos);
    CHECK(out[2].ends_with("1234567890"));
    CHECK(out[3] == "returned");
    CHECK(out[4] == "refused");
}

TEST_CASE("net http server: a request still running at the stop deadline has its connection closed") {
    http::ServerOptions options;
    options.stop_timeout = 200ms;
    StoppableServer server(options);
    auto waited = test::run(server.io, [](std::uint16_t port, Listener* listener, bool* returned) -> asio::awaitable<std::chrono::milliseconds> {
        auto stalled = co_await connect_from("127.0.0.1", port);
        co_await send(*stalled, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n1");
        co_await pause(50ms);
        auto start = std::chrono::steady_clock::now();
        listener->close();
        while (!*returned) co_await pause(10ms);
        co_return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    }(server.port, server.listener.get(), &server.returned));
    CHECK(waited >= 200ms);
    CHECK(waited < 3s);
}

TEST_CASE("net http server: a handler that never finishes is abandoned after the stop deadline") {
    http::ServerOptions options;
    options.stop_timeout = 200ms;
    StoppableServer server(options);
    auto waited = test::run(server.io, [](std::uint16_t port, Listener* listener, bool* returned) -> asio::awaitable<std::chrono::milliseconds> {
        auto hanging = co_await connect_from("127.0.0.1", port);
        co_await send(*hanging, "GET /hang HTTP/1.1\r\n\r\n");
        co_await pause(50ms);
        auto start = std::chrono::steady_clock::now();
        listener->close();
        while (!*returned) co_await pause(10ms);
        co_return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    }(server.port, server.listener.get(), &server.returned), 10s);
    CHECK(waited >= 1200ms);  // stop_timeout, then the grace for handlers
    CHECK(waited < 4s);
}
