// HTTP/1.1 server: one coroutine per connection, keep-alive, strict limits and timeouts so
// that no single client can hold resources that others need.
//
// Responses always carry Content-Length and are never chunked: the JS SDK's hand-written
// unix-socket client cannot read anything else (spec/agent.md §1 item 6). For the same
// client, a connection is closed as soon as the peer half-closes after a complete exchange.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <asio/awaitable.hpp>

#include "dstack/net/http-parser.hpp"
#include "dstack/net/http.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/net/stream.hpp"
#include "dstack/net/tls.hpp"

namespace dstack::net::http {

struct ServerOptions {
    // Not an aggregate on purpose: g++ 12 miscompiles aggregate temporaries ("{}", default
    // arguments) inside coroutines, destroying garbage; a declared constructor avoids that.
    ServerOptions() = default;

    ParserLimits limits;
    // Waiting for the first byte of a request (a new connection, or between keep-alive requests),
    // counted from when the wait began: the empty lines tolerated before a request do not extend it.
    std::chrono::milliseconds idle_timeout{10'000};
    // From the first byte of a request until its header section is complete.
    std::chrono::milliseconds header_timeout{10'000};
    // Body reading: a grace period, extended by one second for every `min_body_rate` bytes
    // received, so slow-but-honest uploads finish and a byte-a-second trickle is cut off.
    std::chrono::milliseconds body_timeout{10'000};
    std::size_t min_body_rate = 64 * 1024;  // bytes per second
    // Hard cap on reading one request, first byte to last.
    std::chrono::milliseconds request_timeout{120'000};
    // Writing one response (a client that stops reading).
    std::chrono::milliseconds write_timeout{30'000};
    std::chrono::milliseconds tls_handshake_timeout{10'000};
    // After an error response, how long and how much we keep reading (and dropping) so the
    // client sees the response instead of a reset caused by unread data.
    std::chrono::milliseconds linger_timeout{1'000};
    std::size_t linger_bytes = 256 * 1024;
    // Connections served at once by serve(). When all are taken, a new connection takes the place
    // of the one that has waited longest for a request (an idle keep-alive connection, or one that
    // has sent nothing yet, TLS handshake included), so idle clients cannot lock others out; when
    // every connection is busy with a request, the new one is answered 503 (plain) or closed (TLS).
    std::size_t max_connections = 1024;
    // When full and no connection is idle, one whose request header has been arriving for longer
    // than this is closed to make room too (the one stalled longest). 0: never. Worth setting only
    // where an honest client sends its header at once (local sockets): there a stalled header is
    // one client holding places it does not use.
    std::chrono::milliseconds evict_stalled_headers_after{0};
    // Connections one client may hold at once in serve(), a client being what
    // Stream::client_address() says: an IPv4 address, an IPv6 /64, the uid of a unix socket's
    // peer (TLS connections count under their transport's). More are refused like connections
    // over max_connections, but never make room by closing another client's. 0: no limit;
    // connections whose client address is unknown are counted only against max_connections.
    std::size_t max_connections_per_address = 64;
    // Request-body bytes held at once by all connections of one serve() call (one
    // serve_connection() call has its own budget): without it, max_connections x
    // limits.max_body_bytes could pin gigabytes. Charged for the body bytes received so far, not
    // for a declared Content-Length: a client that announces a large body and sends little holds
    // little (limits.max_body_bytes still refuses a too large Content-Length with 413 before any
    // body is read). A request whose body would go over is answered 503 and its connection closed.
    std::size_t max_total_body_bytes = 256 * 1024 * 1024;
    // After the listener is closed: how long requests in flight may take to be answered before
    // their connections are closed too (idle connections are closed at once).
    std::chrono::milliseconds stop_timeout{10'000};
    std::string server_name;  // "Server:" header value; empty: none
};

// What a handler may want to know about the connection a request came on.
struct ConnectionInfo {
    ConnectionInfo() = default;  // not an aggregate: see ServerOptions

    std::string peer;                         // "unix:/run/x.sock", "tcp:1.2.3.4:5678"; logs only
    std::string listener;                     // the listener's description, when served by serve()
    const tls::SessionInfo* tls = nullptr;    // null on plain connections
};

// A handler's exceptions are caught and answered with 500; they never end the server.
using Handler = std::function<asio::awaitable<Response>(Request&, const ConnectionInfo&)>;

// Serves requests on one connection until it ends. Never throws.
// The options are copied: the caller's need not outlive the connection.
asio::awaitable<void> serve_connection(StreamPtr stream, Handler handler, ServerOptions options,
                                       ConnectionInfo info = {});

// Accepts connections until the listener is closed, serving each in its own coroutine on its own
// strand; then stops gracefully: idle connections are closed, requests in flight are answered
// (within options.stop_timeout), and it returns once every connection has ended. With a TLS context, each connection first completes a TLS handshake.
// `handler` and the options are copied and shared by all connections.
asio::awaitable<void> serve(Listener& listener, Handler handler, ServerOptions options,
                            std::shared_ptr<tls::ServerContext> tls_context = nullptr);

// The wire form of a response head, as serve_connection writes it (exposed for tests).
std::string serialize_response_head(const Response& response, std::size_t content_length, bool close);

}  // namespace dstack::net::http
