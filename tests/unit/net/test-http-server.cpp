// The HTTP server over a real unix socket and io_context: keep-alive, framing, errors, timeouts.
#include <doctest/doctest.h>

#include <stdexcept>

#include "dstack/net/connect.hpp"
#include "dstack/net/http-client.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
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
        // Let the server accept the first one before the second arrives.
        asio::steady_timer timer(executor, 100ms);
        co_await timer.async_wait(asio::use_awaitable);
        auto second = co_await connect_unix(executor, path, 2s);
        REQUIRE(second.ok());
        std::error_code ec;
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

    // Refused on the declared length alone, before the body is sent.
    auto declared = server.exchange("POST /echo HTTP/1.1\r\nContent-Length: 200\r\n\r\n", false);
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
