// The HTTP client: URL forms, framing of responses, limits, timeouts and error messages.
#include <doctest/doctest.h>

#include "dstack/net/http-client.hpp"
#include "dstack/net/listener.hpp"
#include "net-test.hpp"

using namespace dstack;
using namespace dstack::net;
using namespace std::chrono_literals;

TEST_CASE("net http client: parse_url") {
    auto plain = http::parse_url("http://example.com:8080/a/b?c=d");
    REQUIRE(plain.ok());
    CHECK(plain->endpoint.kind == http::Endpoint::Kind::tcp);
    CHECK(plain->endpoint.host == "example.com");
    CHECK(plain->endpoint.port == 8080);
    CHECK_FALSE(plain->endpoint.tls);
    CHECK(plain->target == "/a/b?c=d");
    CHECK(plain->endpoint.host_header() == "example.com:8080");

    auto secure = http::parse_url("HTTPS://[::1]?x");
    REQUIRE(secure.ok());
    CHECK(secure->endpoint.tls);
    CHECK(secure->endpoint.host == "::1");
    CHECK(secure->endpoint.port == 443);
    CHECK(secure->target == "/?x");
    CHECK(secure->endpoint.host_header() == "[::1]");
    CHECK(secure->endpoint.description() == "https://[::1]:443");

    CHECK_FALSE(http::parse_url("http://exa\tmple.com/").ok());
    CHECK_FALSE(http::parse_url("http://exa\"mple.com/").ok());
    CHECK_FALSE(http::parse_url("http://[::1\r\nX: y]/").ok());

    auto unix_url = http::parse_url("unix:/var/run/dstack.sock");
    REQUIRE(unix_url.ok());
    CHECK(unix_url->endpoint.kind == http::Endpoint::Kind::unix_socket);
    CHECK(unix_url->endpoint.unix_path == "/var/run/dstack.sock");
    CHECK(unix_url->target == "/");
    CHECK(unix_url->endpoint.host_header() == "localhost");

    auto encoded = http::parse_url("http+unix://%2Fvar%2Frun%2Fdstack.sock/GetKey?json");
    REQUIRE(encoded.ok());
    CHECK(encoded->endpoint.unix_path == "/var/run/dstack.sock");
    CHECK(encoded->target == "/GetKey?json");

    for (std::string_view bad : {"ftp://x/", "http://", "http://:80/", "http://h:0/", "http://h:65536/",
                                 "http://h:x/", "http://u@h/", "http://[::1/", "http://h/a b", "unix:",
                                 "http+unix:///x", "example.com"}) {
        CAPTURE(bad);
        CHECK_FALSE(http::parse_url(bad).ok());
    }
}

namespace {

// Accepts one connection, reads the request head, then writes `reply` (and closes unless `hang`).
void serve_once(asio::io_context& io, Listener& listener, std::string reply, bool hang = false) {
    asio::co_spawn(io, [](Listener& listener, std::string reply, bool hang) -> asio::awaitable<void> {
        std::error_code ec;
        auto stream = co_await listener.accept(ec);
        if (!stream) co_return;
        std::string seen;
        std::uint8_t buffer[4096];
        while (seen.find("\r\n\r\n") == std::string::npos && !ec) {
            auto n = co_await stream->read_some(buffer, ec);
            seen.append(reinterpret_cast<const char*>(buffer), n);
        }
        co_await stream->write_all(as_bytes(reply), ec);
        if (hang) {
            asio::steady_timer timer(co_await asio::this_coro::executor, 5s);
            co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        stream->close();
    }(listener, std::move(reply), hang), asio::detached);
}

struct ClientFixture {
    asio::io_context io;
    test::TempDir dir;
    std::filesystem::path path = dir.path / "c.sock";
    ListenerPtr listener;
    ClientFixture() {
        auto l = listen_unix(io.get_executor(), path, 0600);
        REQUIRE(l.ok());
        listener = std::move(*l);
    }
    Result<http::Response> get(http::ClientOptions options = http::ClientOptions()) {
        http::Request request;
        request.method = "GET";
        request.target = "/x";
        return test::run(io, http::send_request(io.get_executor(), http::Endpoint::unix_socket(path), request, options));
    }
};

}  // namespace

TEST_CASE("net http client: response framing") {
    ClientFixture f;
    serve_once(f.io, *f.listener, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n");
    auto chunked = f.get();
    REQUIRE(chunked.ok());
    CHECK(chunked->body == "abcd");

    serve_once(f.io, *f.listener, "HTTP/1.0 404 Not Found\r\n\r\nuntil close");
    auto until_close = f.get();
    REQUIRE(until_close.ok());
    CHECK(until_close->status == 404);
    CHECK(until_close->body == "until close");

    serve_once(f.io, *f.listener, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
    auto truncated = f.get();
    REQUIRE_FALSE(truncated.ok());
    CHECK(truncated.error().message.find("GET unix:") == 0);
    CHECK(truncated.error().message.find("closed in the middle") != std::string::npos);

    serve_once(f.io, *f.listener, "garbage\r\n\r\n");
    auto garbage = f.get();
    REQUIRE_FALSE(garbage.ok());
    CHECK(garbage.error().message.find("invalid response") != std::string::npos);
}

TEST_CASE("net http client: limits, timeouts and connection errors") {
    ClientFixture f;
    http::ClientOptions small;
    small.max_response_bytes = 8;
    serve_once(f.io, *f.listener, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789");
    auto big = f.get(small);
    REQUIRE_FALSE(big.ok());
    CHECK(big.error().message.find("larger than 8 bytes") != std::string::npos);

    http::ClientOptions quick;
    quick.total_timeout = 300ms;
    serve_once(f.io, *f.listener, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", true);
    auto started = std::chrono::steady_clock::now();
    auto slow = f.get(quick);
    REQUIRE_FALSE(slow.ok());
    CHECK(slow.error().message.find("timed out after 300 ms") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - started < 3s);

    asio::io_context io;
    auto missing = test::run(io, http::get(io.get_executor(), "unix:/nonexistent/dstack-test.sock"));
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("/nonexistent/dstack-test.sock") != std::string::npos);

    auto no_tls = test::run(io, http::get(io.get_executor(), "https://127.0.0.1:1/"));
    REQUIRE_FALSE(no_tls.ok());

    http::Request injected;
    injected.method = "GET";
    injected.target = "/";
    injected.headers.add("X", "a\r\nB: c");
    auto refused = test::run(io, http::send_request(io.get_executor(), http::Endpoint::unix_socket(f.path), injected));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("invalid request header") != std::string::npos);
}

TEST_CASE("net http client: path, query and host are checked before they reach the wire") {
    asio::io_context io;
    http::Request request;
    request.method = "GET";
    request.path = "/a\r\nX-Evil: 1";
    auto bad_path = test::run(io, http::send_request(io.get_executor(), http::Endpoint::unix_socket("/nonexistent"), request));
    REQUIRE_FALSE(bad_path.ok());
    CHECK(bad_path.error().message.find("path or query") != std::string::npos);
    request.path = "/a";
    request.has_query = true;
    request.query = "x y";
    auto bad_query = test::run(io, http::send_request(io.get_executor(), http::Endpoint::unix_socket("/nonexistent"), request));
    REQUIRE_FALSE(bad_query.ok());
    CHECK(bad_query.error().message.find("path or query") != std::string::npos);
    request.query.clear();
    auto bad_host = test::run(io, http::send_request(io.get_executor(), http::Endpoint::tcp("a\r\nb", 80), request));
    REQUIRE_FALSE(bad_host.ok());
    CHECK(bad_host.error().message.find("invalid host") != std::string::npos);
}
