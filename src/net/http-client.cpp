// HTTP/1.1 client: one request per connection keeps it simple and leaves no idle sockets; the
// callers (KMS webhooks, ACME, the CLI talking to local sockets) make few, small requests.
#include "dstack/net/http-client.hpp"

#include <algorithm>
#include <charconv>

#include <asio/co_spawn.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "dstack/net/connect.hpp"
#include "dstack/net/http-parser.hpp"
#include "dstack/net/vsock-address.hpp"
#include "dstack/net/stream-watchdog.hpp"

namespace dstack::net::http {

namespace {

using Clock = std::chrono::steady_clock;

Result<std::uint16_t> parse_port(std::string_view text) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535) {
        return make_error("invalid port '{}'", text);
    }
    return static_cast<std::uint16_t>(value);
}

std::string normalize_target(std::string_view rest) {
    if (rest.empty()) return "/";
    if (rest.front() == '?') return "/" + std::string(rest);
    return std::string(rest);
}

bool valid_target(std::string_view target) {
    return std::none_of(target.begin(), target.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f || c == '#';
    });
}

// A host as it may appear in the Host header and in messages: a DNS name, an IPv4 literal or
// an IPv6 literal (without brackets, with an optional zone). Anything else could smuggle
// header or request-line syntax.
bool valid_host(std::string_view host) {
    return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
               c == '_' || c == '~' || c == ':' || c == '%';
    });
}

std::string build_request_head(const Endpoint& endpoint, const Request& request, const ClientOptions& options) {
    std::string target = request.target.empty() ? request.path + (request.has_query ? "?" + request.query : "")
                                                 : request.target;
    if (target.empty()) target = "/";
    std::string out = fmt::format("{} {} HTTP/1.1\r\n", request.method, target);
    if (!request.headers.contains("Host")) out += "Host: " + endpoint.host_header() + "\r\n";
    if (!request.headers.contains("User-Agent") && !options.user_agent.empty()) {
        out += "User-Agent: " + options.user_agent + "\r\n";
    }
    for (const auto& h : request.headers) {
        if (iequals(h.name, "Content-Length") || iequals(h.name, "Transfer-Encoding") || iequals(h.name, "Connection")) {
            continue;
        }
        out += h.name + ": " + h.value + "\r\n";
    }
    bool body_expected = !request.body.empty() || request.method == "POST" || request.method == "PUT" ||
                         request.method == "PATCH";
    if (body_expected) out += fmt::format("Content-Length: {}\r\n", request.body.size());
    out += "Connection: close\r\n\r\n";
    return out;
}

// A ready context is used as it is: its own server_name is the name checked (see ClientOptions).
Result<std::shared_ptr<tls::ClientContext>> client_context(const Endpoint& endpoint, const ClientOptions& options) {
    if (options.tls_context) return options.tls_context;
    if (!options.tls_config) return make_error("https needs a TLS client configuration (trust anchors)");
    tls::ClientConfig config = *options.tls_config;
    if (config.server_name.empty()) config.server_name = endpoint.host;
    return tls::make_client_context(std::move(config));
}

asio::awaitable<Result<Response>> exchange(asio::any_io_executor executor, Endpoint endpoint, Request request,
                                           ClientOptions options) {
    using std::chrono::milliseconds;
    for (const auto& h : request.headers) {
        bool bad_value = std::any_of(h.value.begin(), h.value.end(), [](char c) { return c == '\r' || c == '\n'; });
        if (h.name.empty() || h.name.find_first_of(":\r\n \t") != std::string::npos || bad_value) {
            co_return make_error("invalid request header field '{}'", h.name);
        }
    }
    if (request.method.empty() || request.method.find_first_of(" \r\n") != std::string::npos ||
        !valid_target(request.target)) {
        co_return make_error("invalid request line");
    }
    // path and query make the target when no target is given; they go on the request line too.
    if (request.target.empty() && (!valid_target(request.path) || !valid_target(request.query))) {
        co_return make_error("invalid request line: bad characters in the path or query");
    }
    if (endpoint.kind == Endpoint::Kind::tcp && !valid_host(endpoint.host)) {
        co_return make_error("invalid host '{}'", endpoint.host);
    }

    auto deadline = Clock::now() + options.total_timeout;
    auto connect_limit = std::min(options.connect_timeout, options.total_timeout);
    // (No co_await inside ?: — g++ 12 miscompiles that.)
    Result<StreamPtr> connected = make_error("not connected");
    if (endpoint.kind == Endpoint::Kind::unix_socket) {
        connected = co_await connect_unix(executor, endpoint.unix_path, connect_limit);
    } else if (endpoint.kind == Endpoint::Kind::vsock) {
        connected = co_await connect_vsock(executor, endpoint.vsock_cid, endpoint.vsock_port, connect_limit);
    } else {
        connected = co_await connect_tcp(executor, endpoint.host, endpoint.port, connect_limit);
    }
    if (!connected) co_return std::move(connected).take_error();
    std::shared_ptr<Stream> stream(std::move(*connected));

    auto watchdog = std::make_shared<net::Watchdog>(co_await asio::this_coro::executor);
    net::WatchdogStopper stopper{watchdog};
    watchdog->guard(stream);
    watchdog->start();
    watchdog->arm(deadline);
    auto timeout_error = [&] {
        return make_error("timed out after {} ms", options.total_timeout.count());
    };

    if (endpoint.tls) {
        auto context = client_context(endpoint, options);
        if (!context) co_return std::move(context).take_error();
        auto secured = co_await tls::TlsStream::connect(std::make_unique<net::SharedStream>(stream), *context);
        if (!secured) {
            if (watchdog->fired()) co_return timeout_error();
            co_return std::move(secured).take_error().context("TLS handshake");
        }
        stream = std::shared_ptr<tls::TlsStream>(std::move(*secured));
        watchdog->guard(stream);
    }

    std::string out = build_request_head(endpoint, request, options);
    out += request.body;
    std::error_code ec;
    co_await stream->write_all(as_bytes(out), ec);
    if (ec) {
        stream->close();
        if (watchdog->fired()) co_return timeout_error();
        co_return make_error("sending the request: {}", ec.message());
    }

    ParserLimits limits;
    limits.max_body_bytes = options.max_response_bytes;
    limits.max_header_bytes = options.max_header_bytes;
    limits.max_request_line = options.max_header_bytes;
    ResponseParser parser(limits);
    parser.set_request_method(request.method);
    std::vector<std::uint8_t> buffer(16 * 1024);
    auto status = ResponseParser::Status::need_more;
    while (status == ResponseParser::Status::need_more) {
        std::size_t n = co_await stream->read_some(buffer, ec);
        if (n > 0) {
            parser.feed(std::string_view(reinterpret_cast<const char*>(buffer.data()), n));
            status = parser.parse();
        } else if (ec == asio::error::eof) {
            status = parser.finish();
        } else {
            stream->close();
            if (watchdog->fired()) co_return timeout_error();
            co_return make_error("reading the response: {}", ec.message());
        }
    }
    stream->close();
    if (status == ResponseParser::Status::error) {
        const auto& error = parser.error();
        if (error.status == 413) co_return make_error("response larger than {} bytes", options.max_response_bytes);
        if (error.status == 431) co_return make_error("response header larger than {} bytes", options.max_header_bytes);
        co_return make_error("invalid response: {}", error.message);
    }
    co_return parser.take_response();
}

// co_spawn needs a default-constructible result, hence the optional.
asio::awaitable<std::optional<Result<Response>>> exchange_optional(asio::any_io_executor executor, Endpoint endpoint,
                                                                   Request request, ClientOptions options) {
    co_return co_await exchange(std::move(executor), std::move(endpoint), std::move(request), std::move(options));
}

}  // namespace

Endpoint Endpoint::tcp(std::string host, std::uint16_t port, bool tls) {
    Endpoint e;
    e.kind = Kind::tcp;
    e.host = std::move(host);
    e.port = port;
    e.tls = tls;
    return e;
}

Endpoint Endpoint::unix_socket(std::filesystem::path path) {
    Endpoint e;
    e.kind = Kind::unix_socket;
    e.unix_path = std::move(path);
    return e;
}

Endpoint Endpoint::vsock(std::uint32_t cid, std::uint32_t port) {
    Endpoint e;
    e.kind = Kind::vsock;
    e.vsock_cid = cid;
    e.vsock_port = port;
    return e;
}

std::string Endpoint::host_header() const {
    // A vsock address is no host name; like a unix socket's path it stays off the wire.
    if (kind == Kind::unix_socket || kind == Kind::vsock) return "localhost";
    bool ipv6 = host.find(':') != std::string::npos;
    std::string name = ipv6 ? "[" + host + "]" : host;
    if (port == (tls ? 443 : 80)) return name;
    return fmt::format("{}:{}", name, port);
}

std::string Endpoint::description() const {
    if (kind == Kind::unix_socket) return "unix:" + unix_path.string();
    if (kind == Kind::vsock) return fmt::format("vsock://{}:{}", vsock_cid, vsock_port);
    bool ipv6 = host.find(':') != std::string::npos;
    return fmt::format("{}://{}:{}", tls ? "https" : "http", ipv6 ? "[" + host + "]" : host, port);
}

Result<Url> parse_url(std::string_view url) {
    Url out;
    auto starts_with = [&](std::string_view prefix) {
        return url.size() >= prefix.size() && iequals(url.substr(0, prefix.size()), prefix);
    };
    if (starts_with("unix:") && !starts_with("unix://")) {
        auto path = url.substr(5);
        if (path.empty()) return make_error("'{}': empty socket path", url);
        out.endpoint = Endpoint::unix_socket(std::filesystem::path(path));
        out.target = "/";
        return out;
    }
    if (starts_with("vsock:")) {
        // "vsock://CID:PORT/target" as URLs write it; "vsock:CID:PORT" as listen addresses do.
        bool url_form = starts_with("vsock://");
        auto rest = url.substr(url_form ? 8 : 6);
        auto slash = url_form ? rest.find_first_of("/?") : std::string_view::npos;
        auto address = parse_vsock_address(rest.substr(0, slash), url, VsockUse::connect);
        if (!address) return std::move(address).take_error();
        out.endpoint = Endpoint::vsock(address->cid, address->port);
        out.target = normalize_target(slash == std::string_view::npos ? std::string_view{} : rest.substr(slash));
    } else if (starts_with("http+unix://")) {
        auto rest = url.substr(12);
        auto slash = rest.find_first_of("/?");
        auto path = percent_decode(rest.substr(0, slash), false);
        if (!path || path->empty()) return make_error("'{}': invalid socket path", url);
        out.endpoint = Endpoint::unix_socket(std::filesystem::path(*path));
        out.target = normalize_target(slash == std::string_view::npos ? std::string_view{} : rest.substr(slash));
    } else {
        bool tls;
        std::string_view rest;
        if (starts_with("http://")) {
            tls = false;
            rest = url.substr(7);
        } else if (starts_with("https://")) {
            tls = true;
            rest = url.substr(8);
        } else {
            return make_error("'{}': unsupported URL (expected http://, https://, unix: or vsock://)", url);
        }
        auto slash = rest.find_first_of("/?");
        auto authority = rest.substr(0, slash);
        out.target = normalize_target(slash == std::string_view::npos ? std::string_view{} : rest.substr(slash));
        if (authority.find('@') != std::string_view::npos) return make_error("'{}': user info in URLs is not supported", url);
        std::string_view host;
        std::string_view port_text;
        if (!authority.empty() && authority.front() == '[') {
            auto close = authority.find(']');
            if (close == std::string_view::npos) return make_error("'{}': unterminated IPv6 address", url);
            host = authority.substr(1, close - 1);
            auto after = authority.substr(close + 1);
            if (!after.empty()) {
                if (after.front() != ':') return make_error("'{}': invalid authority", url);
                port_text = after.substr(1);
            }
        } else {
            auto colon = authority.find(':');
            host = authority.substr(0, colon);
            if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
        }
        if (host.empty()) return make_error("'{}': missing host", url);
        if (!valid_host(host)) return make_error("'{}': invalid characters in the host", url);
        std::uint16_t port = tls ? 443 : 80;
        if (!port_text.empty()) {
            auto parsed = parse_port(port_text);
            if (!parsed) return std::move(parsed).take_error().context(fmt::format("'{}'", url));
            port = *parsed;
        }
        out.endpoint = Endpoint::tcp(std::string(host), port, tls);
    }
    if (!valid_target(out.target)) return make_error("'{}': invalid characters in the path", url);
    return out;
}

asio::awaitable<Result<Response>> send_request(asio::any_io_executor executor, Endpoint endpoint, Request request,
                                               ClientOptions options) {
    std::string what = fmt::format("{} {}{}", request.method, endpoint.description(),
                                   endpoint.kind == Endpoint::Kind::unix_socket ? " " + request.target : request.target);
    // Our own strand: the deadline watchdog and the exchange must never run concurrently,
    // whatever executor the caller runs on.
    auto spawned = co_await asio::co_spawn(
        asio::make_strand(executor),
        exchange_optional(executor, std::move(endpoint), std::move(request), std::move(options)),
        asio::use_awaitable);
    Result<Response> result = std::move(*spawned);
    if (!result) co_return std::move(result).take_error().context(what);
    co_return result;
}

asio::awaitable<Result<Response>> get(asio::any_io_executor executor, std::string url, ClientOptions options) {
    auto parsed = parse_url(url);
    if (!parsed) co_return std::move(parsed).take_error();
    Request request;
    request.method = "GET";
    request.target = parsed->target;
    co_return co_await send_request(executor, parsed->endpoint, std::move(request), std::move(options));
}

asio::awaitable<Result<Response>> post(asio::any_io_executor executor, std::string url, std::string body,
                                       std::string content_type, ClientOptions options) {
    auto parsed = parse_url(url);
    if (!parsed) co_return std::move(parsed).take_error();
    Request request;
    request.method = "POST";
    request.target = parsed->target;
    if (!content_type.empty()) request.headers.add("Content-Type", std::move(content_type));
    request.body = std::move(body);
    co_return co_await send_request(executor, parsed->endpoint, std::move(request), std::move(options));
}

}  // namespace dstack::net::http
