// HTTP/1.1 client over TCP, unix sockets, vsock and TLS: one request per connection
// ("Connection: close"), bounded in time and size, every failure a Result error.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"
#include "dstack/net/http.hpp"
#include "dstack/net/tls.hpp"

namespace dstack::net::http {

struct Endpoint {
    // Not an aggregate on purpose: g++ 12 miscompiles aggregate temporaries ("{}", default
    // arguments) inside coroutines, destroying garbage; a declared constructor avoids that.
    Endpoint() = default;

    enum class Kind { tcp, unix_socket, vsock };
    Kind kind = Kind::tcp;
    std::string host;                  // name or IP literal (IPv6 without brackets)
    std::uint16_t port = 80;
    std::filesystem::path unix_path;
    std::uint32_t vsock_cid = 0;       // vsock ports are 32 bits: not `port`
    std::uint32_t vsock_port = 0;
    bool tls = false;

    static Endpoint tcp(std::string host, std::uint16_t port, bool tls = false);
    static Endpoint unix_socket(std::filesystem::path path);
    static Endpoint vsock(std::uint32_t cid, std::uint32_t port);
    // Value of the Host header: "example.com:8080", "[::1]:80"; "localhost" for unix sockets and vsock.
    std::string host_header() const;
    // "http://example.com:8080", "https://[::1]:443", "unix:/run/dstack.sock", "vsock://3:8000":
    // for messages.
    std::string description() const;
};

struct Url {
    Endpoint endpoint;
    std::string target;  // "/path?query", at least "/"
};

// Accepts "http://host[:port][/target]", "https://host[:port][/target]" (IPv6 in brackets),
// "unix:/path/to.sock" (target "/"), "http+unix://<percent-encoded socket path>[/target]",
// "vsock://CID:PORT[/target]" (what upstream's VMM and host_api_url use) and "vsock:CID:PORT" (target "/").
Result<Url> parse_url(std::string_view url);

struct ClientOptions {
    ClientOptions() = default;  // not an aggregate: see Endpoint

    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds total_timeout{60'000};  // connect to last byte of the response
    std::size_t max_response_bytes = 16 * 1024 * 1024;
    std::size_t max_header_bytes = 64 * 1024;
    // For https: a ready context, or a configuration to build one per request (its server_name
    // defaults to the URL's host, so the host is what the certificate is checked against).
    // Neither: https requests fail rather than go unverified.
    // A ready context is used as it is: the server certificate is checked against the context's
    // own server_name, NOT the URL's host; build one context per host you talk to (or use
    // tls_config) when the name matters.
    std::shared_ptr<tls::ClientContext> tls_context;
    std::optional<tls::ClientConfig> tls_config;
    std::string user_agent = "dstack";
};

// Sends `request` (method, target, headers, body; Host, Content-Length and Connection are set
// here) and reads the whole response. Any status is a successful Result: callers check it.
asio::awaitable<Result<Response>> send_request(asio::any_io_executor executor, Endpoint endpoint, Request request,
                                               ClientOptions options = {});

// Conveniences over send_request for a URL.
asio::awaitable<Result<Response>> get(asio::any_io_executor executor, std::string url, ClientOptions options = {});
asio::awaitable<Result<Response>> post(asio::any_io_executor executor, std::string url, std::string body,
                                       std::string content_type = "application/json", ClientOptions options = {});

}  // namespace dstack::net::http
