// HTTP/1.1 server connections. Every wait on the peer runs under a deadline enforced by a
// watchdog that closes the stream: closing works for any Stream (TCP, unix, TLS) without
// relying on per-operation cancellation support.
#include "dstack/net/http-server.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "dstack/base/log.hpp"
#include "dstack/net/stream-watchdog.hpp"

namespace dstack::net::http {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using net::SharedStream;
using net::Watchdog;
using net::WatchdogStopper;

constexpr std::size_t read_chunk = 16 * 1024;
constexpr std::size_t single_write_limit = 64 * 1024;  // below this, head and body go out together
constexpr std::size_t refusal_backlog = 64;            // refusals in flight beyond max_connections
constexpr auto abandon_grace = std::chrono::seconds(1);  // after stop_timeout: see drain()

bool valid_header_name(std::string_view name) {
    static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               extra.find(c) != std::string_view::npos;
    });
}

bool valid_header_value(std::string_view value) {
    return std::none_of(value.begin(), value.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && u != '\t') || u == 0x7f;
    });
}

std::string http_date() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[64];
    std::size_t n = std::strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(buffer, n);
}

// The request-body bytes one request holds against the server-wide budget, given back when the
// request is done (however it ends).
class BodyReservation {
public:
    BodyReservation(std::atomic<std::size_t>& in_flight, std::size_t limit) : in_flight_(in_flight), limit_(limit) {}
    ~BodyReservation() { release(); }
    BodyReservation(const BodyReservation&) = delete;
    BodyReservation& operator=(const BodyReservation&) = delete;

    // Grows the reservation to `total` bytes; false (holding what it held) when over budget.
    bool reserve(std::uint64_t total) {
        if (total <= held_) return true;
        std::uint64_t extra = total - held_;
        std::size_t current = in_flight_.load();
        do {
            if (current > limit_ || extra > limit_ - current) return false;
        } while (!in_flight_.compare_exchange_weak(current, current + static_cast<std::size_t>(extra)));
        held_ = static_cast<std::size_t>(total);
        return true;
    }
    void release() {
        if (held_ != 0) in_flight_ -= held_;
        held_ = 0;
    }

private:
    std::atomic<std::size_t>& in_flight_;
    std::size_t limit_;
    std::size_t held_ = 0;
};

// The connections of one serve() call, for the per-address limit and for making room when the
// server is full. The accept loop and every connection (each on its own strand, on any of the
// runtime's threads) use it, so one mutex guards it; it is held for a few instructions, or for
// one scan of at most max_connections entries when the server is full.
//
// A connection is "idle" while it waits for the first byte of a request. Only idle connections
// are evicted, and the decision is made under the mutex: a connection marks itself busy (under
// the same mutex) as soon as a request's first bytes arrive, and one that finds itself evicted
// by then drops those bytes unanswered, as a keep-alive connection closed by an idle timeout
// would (clients retry such a request on a new connection).
class ConnectionTable {
public:
    struct Entry {
        Entry() = default;  // not an aggregate: see ServerOptions

        std::string address;               // Stream::client_address(); empty: not counted per address
        asio::any_io_executor strand;      // the connection's own: its stream is closed there only
        std::weak_ptr<Stream> transport;
        Clock::time_point idle_since;
        Clock::time_point request_since;  // when the current request's first bytes arrived
        bool idle = true;
        bool headers_complete = false;
        bool evicted = false;
    };
    using Handle = std::list<Entry>::iterator;

    enum class Verdict { admitted, address_full, server_full };
    struct Admission {
        Admission() = default;

        Verdict verdict = Verdict::server_full;
        Handle handle;
        // An idle connection closed to make room: close `victim` on `victim_strand`.
        std::weak_ptr<Stream> victim;
        asio::any_io_executor victim_strand;
        std::string victim_address;  // for logs
    };

    ConnectionTable(std::size_t max_connections, std::size_t per_address, std::chrono::milliseconds stalled_header)
        : max_connections_(max_connections), per_address_limit_(per_address), stalled_header_(stalled_header) {}

    Admission admit(std::string address, asio::any_io_executor strand, std::weak_ptr<Stream> transport) {
        Admission admission;
        std::lock_guard lock(mutex_);
        if (!address.empty() && per_address_limit_ != 0) {
            auto counted = per_address_.find(address);
            if (counted != per_address_.end() && counted->second >= per_address_limit_) {
                admission.verdict = Verdict::address_full;
                return admission;
            }
        }
        if (live_ >= max_connections_) {
            auto oldest = entries_.end();
            for (auto it = entries_.begin(); it != entries_.end(); ++it) {
                if (it->idle && !it->evicted && (oldest == entries_.end() || it->idle_since < oldest->idle_since))
                    oldest = it;
            }
            if (oldest == entries_.end() && stalled_header_.count() > 0) {
                auto cutoff = Clock::now() - stalled_header_;
                for (auto it = entries_.begin(); it != entries_.end(); ++it) {
                    if (!it->idle && !it->headers_complete && !it->evicted && it->request_since <= cutoff &&
                        (oldest == entries_.end() || it->request_since < oldest->request_since))
                        oldest = it;
                }
            }
            if (oldest == entries_.end()) {
                admission.verdict = Verdict::server_full;
                return admission;
            }
            // It stays in the table (and counted for its address) until its coroutine has ended,
            // but no longer takes a place: the server briefly holds one more connection.
            oldest->evicted = true;
            --live_;
            admission.victim = oldest->transport;
            admission.victim_strand = oldest->strand;
            admission.victim_address = oldest->address;
        }
        Entry& entry = entries_.emplace_back();
        entry.address = std::move(address);
        entry.strand = std::move(strand);
        entry.transport = std::move(transport);
        entry.idle_since = Clock::now();
        if (!entry.address.empty()) ++per_address_[entry.address];
        ++live_;
        admission.verdict = Verdict::admitted;
        admission.handle = std::prev(entries_.end());
        return admission;
    }

    void remove(Handle handle) {
        std::lock_guard lock(mutex_);
        if (!handle->evicted) --live_;
        if (!handle->address.empty()) {
            auto counted = per_address_.find(handle->address);
            if (--counted->second == 0) per_address_.erase(counted);
        }
        entries_.erase(handle);
    }

    // The first bytes of a request arrived; false when the connection was evicted before.
    bool begin_request(Handle handle) {
        std::lock_guard lock(mutex_);
        if (handle->evicted || stopping_) return false;
        handle->idle = false;
        handle->headers_complete = false;
        handle->request_since = Clock::now();
        return true;
    }
    // The current request's header is complete: no longer a stalled header.
    void headers_received(Handle handle) {
        std::lock_guard lock(mutex_);
        handle->headers_complete = true;
    }
    // The connection waits for a new request (a no-op when it already did: the wait goes on).
    void end_request(Handle handle) {
        std::lock_guard lock(mutex_);
        if (handle->idle) return;
        handle->idle = true;
        handle->idle_since = Clock::now();
    }
    bool evicted(Handle handle) {
        std::lock_guard lock(mutex_);
        return handle->evicted;
    }

    // The server stops: no connection starts another request; the idle ones are returned to be
    // closed (on their strands), the busy ones finish the request they are in.
    std::vector<std::pair<std::weak_ptr<Stream>, asio::any_io_executor>> stop() {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        std::vector<std::pair<std::weak_ptr<Stream>, asio::any_io_executor>> idle;
        for (auto& entry : entries_)
            if (entry.idle) idle.emplace_back(entry.transport, entry.strand);
        return idle;
    }
    // Every connection, to be closed when the stop deadline has passed.
    std::vector<std::pair<std::weak_ptr<Stream>, asio::any_io_executor>> all() {
        std::lock_guard lock(mutex_);
        std::vector<std::pair<std::weak_ptr<Stream>, asio::any_io_executor>> out;
        for (auto& entry : entries_) out.emplace_back(entry.transport, entry.strand);
        return out;
    }
    bool stopping() {
        std::lock_guard lock(mutex_);
        return stopping_;
    }
    bool empty() {
        std::lock_guard lock(mutex_);
        return entries_.empty();
    }

private:
    std::mutex mutex_;
    std::list<Entry> entries_;
    std::unordered_map<std::string, std::size_t> per_address_;
    std::size_t live_ = 0;  // entries not evicted
    bool stopping_ = false;
    std::size_t max_connections_;
    std::size_t per_address_limit_;
    std::chrono::milliseconds stalled_header_;
};

// A connection's place in its server's table, for as long as the connection lives.
class TablePlace {
public:
    TablePlace(ConnectionTable& table, ConnectionTable::Handle handle) : table_(table), handle_(handle) {}
    ~TablePlace() { table_.remove(handle_); }
    TablePlace(const TablePlace&) = delete;
    TablePlace& operator=(const TablePlace&) = delete;

    bool begin_request() {
        if (busy_) return true;
        busy_ = table_.begin_request(handle_);
        return busy_;
    }
    void end_request() {
        if (!busy_) return;
        busy_ = false;
        headers_ = false;
        table_.end_request(handle_);
    }
    void headers_received() {
        if (headers_ || !busy_) return;
        headers_ = true;
        table_.headers_received(handle_);
    }
    bool evicted() { return table_.evicted(handle_); }
    bool stopping() { return table_.stopping(); }

private:
    ConnectionTable& table_;
    ConnectionTable::Handle handle_;
    bool busy_ = false;
    bool headers_ = false;
};

Response error_response(const ParseError& error) {
    return Response::json_error(error.status, error.message);
}

asio::awaitable<bool> write_bytes(Stream& stream, Watchdog& watchdog, std::string_view bytes,
                                  std::chrono::milliseconds timeout) {
    std::error_code ec;
    watchdog.arm(Clock::now() + timeout);
    co_await stream.write_all(as_bytes(bytes), ec);
    watchdog.disarm();
    co_return !ec;
}

// Writes a response; for HEAD (or a body-less status) the body is counted but not sent.
asio::awaitable<bool> write_response(Stream& stream, Watchdog& watchdog, Response& response, bool head_only,
                                     bool close, const ServerOptions& options) {
    if (!options.server_name.empty() && !response.headers.contains("Server")) {
        response.headers.add("Server", options.server_name);
    }
    bool no_body = head_only || response.status == 204 || response.status == 304 || response.status < 200;
    std::string out = serialize_response_head(response, response.status == 204 ? 0 : response.body.size(), close);
    if (no_body) co_return co_await write_bytes(stream, watchdog, out, options.write_timeout);
    if (response.body.size() <= single_write_limit) {
        out += response.body;
        co_return co_await write_bytes(stream, watchdog, out, options.write_timeout);
    }
    if (!co_await write_bytes(stream, watchdog, out, options.write_timeout)) co_return false;
    co_return co_await write_bytes(stream, watchdog, response.body, options.write_timeout);
}

// After an error response: end our side, then drain a bounded amount of what the client is
// still sending, so that closing does not turn into a reset that destroys the response.
asio::awaitable<void> linger_and_close(Stream& stream, Watchdog& watchdog, const ServerOptions& options) {
    std::error_code ec;
    watchdog.arm(Clock::now() + options.linger_timeout);
    co_await stream.shutdown_send(ec);
    std::size_t drained = 0;
    std::uint8_t buffer[4096];
    while (!ec && drained < options.linger_bytes) {
        drained += co_await stream.read_some(buffer, ec);
    }
    stream.close();
}

// `place` is the connection's entry in its server's table; null for serve_connection().
asio::awaitable<void> serve_requests(std::shared_ptr<Stream> stream, Watchdog& watchdog, const Handler& handler,
                                     const ServerOptions& options, const ConnectionInfo& info,
                                     std::atomic<std::size_t>& body_in_flight, TablePlace* place) {
    RequestParser parser(options.limits);
    std::vector<std::uint8_t> buffer(read_chunk);
    for (;;) {
        // ---- read one request ----
        BodyReservation reservation(body_in_flight, options.max_total_body_bytes);
        // Charged for the bytes held, never for what Content-Length merely announces.
        auto within_budget = [&] {
            if (!parser.headers_complete()) return true;
            return reservation.reserve(parser.body_size());
        };
        auto status = parser.parse();
        bool over_budget = status != RequestParser::Status::error && !within_budget();
        // One deadline for the whole wait: bytes that leave the parser idle (empty lines) do not move it.
        auto idle_deadline = Clock::now() + options.idle_timeout;
        Clock::time_point request_start{};
        Clock::time_point headers_done{};
        std::size_t body_bytes_read = 0;
        bool continue_sent = false;
        if (!parser.idle()) {
            request_start = Clock::now();
        } else if (place) {
            place->end_request();
        }
        while (status == RequestParser::Status::need_more && !over_budget) {
            auto now = Clock::now();
            if (parser.idle()) {
                watchdog.arm(idle_deadline);
            } else {
                if (request_start == Clock::time_point{}) request_start = now;
                auto cap = request_start + options.request_timeout;
                if (!parser.headers_complete()) {
                    watchdog.arm(std::min(cap, request_start + options.header_timeout));
                } else {
                    if (headers_done == Clock::time_point{}) headers_done = now;
                    auto earned = std::chrono::milliseconds(
                        options.min_body_rate == 0 ? 0 : body_bytes_read * 1000 / options.min_body_rate);
                    watchdog.arm(std::min(cap, headers_done + options.body_timeout + earned));
                    if (!continue_sent && parser.expects_continue() && parser.current().version_minor >= 1) {
                        continue_sent = true;
                        static constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
                        if (!co_await write_bytes(*stream, watchdog, continue_line, options.write_timeout)) co_return;
                        continue;  // re-arm the read deadline
                    }
                }
            }
            std::error_code ec;
            std::size_t n = co_await stream->read_some(buffer, ec);
            watchdog.disarm();
            if (n > 0) {
                if (parser.headers_complete()) body_bytes_read += n;
                parser.feed(std::string_view(reinterpret_cast<const char*>(buffer.data()), n));
                status = parser.parse();
                if (place && !parser.idle() && !place->begin_request()) {
                    log::debug("http: {}: closed to make room for a new connection before its request", info.peer);
                    co_return;
                }
                if (place && parser.headers_complete()) place->headers_received();
                over_budget = status != RequestParser::Status::error && !within_budget();
                continue;
            }
            if (ec == asio::error::eof && parser.idle()) {
                // The peer is done (half-close after its last response): close so that clients
                // waiting for our end, like the JS SDK's, finish.
                std::error_code ignored;
                watchdog.arm(Clock::now() + options.write_timeout);
                co_await stream->shutdown_send(ignored);
                co_return;
            }
            if (watchdog.fired()) {
                log::debug("http: {}: timed out {}", info.peer,
                           parser.idle() ? "waiting for a request" : "reading a request");
            } else if (place && place->evicted()) {
                log::debug("http: {}: {} connection closed to make room for a new one", info.peer,
                           parser.idle() ? "idle" : "stalled");
            } else if (ec == asio::error::eof) {
                log::debug("http: {}: connection closed in the middle of a request", info.peer);
            } else {
                log::debug("http: {}: read failed: {}", info.peer, ec.message());
            }
            co_return;
        }

        if (over_budget) {
            log::warn("http: {}: request bodies in flight would exceed {} bytes; refusing a request", info.peer,
                      options.max_total_body_bytes);
            auto response = Response::json_error(503, "server busy: too much request data in flight, try again later");
            if (co_await write_response(*stream, watchdog, response, false, true, options)) {
                co_await linger_and_close(*stream, watchdog, options);
            }
            co_return;
        }

        if (status == RequestParser::Status::error) {
            const auto& error = parser.error();
            log::debug("http: {}: bad request ({}): {}", info.peer, error.status, error.message);
            auto response = error_response(error);
            if (co_await write_response(*stream, watchdog, response, false, true, options)) {
                co_await linger_and_close(*stream, watchdog, options);
            }
            co_return;
        }

        // ---- answer it ----
        Request request = parser.take_request();
        bool keep_alive = request.keep_alive();
        bool head_only = request.method == "HEAD";
        Response response;
        bool failed = false;
        try {
            response = co_await handler(request, info);
        } catch (const std::exception& e) {
            log::error("http: {}: handler for {} {} failed: {}", info.peer, request.method, request.path, e.what());
            failed = true;
        } catch (...) {
            log::error("http: {}: handler for {} {} failed with a non-standard exception", info.peer, request.method,
                       request.path);
            failed = true;
        }
        if (failed) response = Response::json_error(500, "internal server error");
        if (response.headers.has_token("Connection", "close")) keep_alive = false;
        if (place && place->stopping()) keep_alive = false;  // the server is stopping: this was the last
        if (keep_alive && request.version_minor == 0) response.headers.set("Connection", "keep-alive");
        log::debug("http: {}: {} {} -> {}", info.peer, request.method, request.path, response.status);
        if (!co_await write_response(*stream, watchdog, response, head_only, !keep_alive, options)) co_return;
        if (!keep_alive) {
            std::error_code ignored;
            watchdog.arm(Clock::now() + options.write_timeout);
            co_await stream->shutdown_send(ignored);
            co_return;
        }
    }
}

struct ServerState {
    Handler handler;
    ServerOptions options;
    std::shared_ptr<tls::ServerContext> tls_context;
    std::string listener;
    std::optional<ConnectionTable> connections;   // built from options
    std::atomic<std::size_t> refusing{0};
    std::atomic<std::size_t> body_in_flight{0};  // against options.max_total_body_bytes
    // Refusals are logged at most once a second (a flood must not become a log flood); only the
    // accept loop touches these.
    Clock::time_point refusal_logged{};
    std::size_t refusals_unlogged = 0;
};

// Holds a refusal slot for as long as the refusal is being written.
struct Slot {
    std::atomic<std::size_t>& counter;
    ~Slot() { --counter; }
};

asio::awaitable<void> serve_shared(std::shared_ptr<Stream> stream, const Handler& handler, const ServerOptions& options,
                                   ConnectionInfo info, std::atomic<std::size_t>& body_in_flight, TablePlace* place) {
    auto watchdog = std::make_shared<Watchdog>(co_await asio::this_coro::executor);
    WatchdogStopper stopper{watchdog};
    watchdog->guard(stream);
    watchdog->start();
    co_await serve_requests(stream, *watchdog, handler, options, info, body_in_flight, place);
    stream->close();
}

asio::awaitable<void> run_connection(std::shared_ptr<ServerState> state, std::shared_ptr<Stream> transport,
                                     ConnectionTable::Handle handle) {
    TablePlace place(*state->connections, handle);
    ConnectionInfo info;
    info.listener = state->listener;
    try {
        info.peer = transport->peer_description();
        if (!state->tls_context) {
            co_await serve_shared(transport, state->handler, state->options, info, state->body_in_flight, &place);
            co_return;
        }
        auto watchdog = std::make_shared<Watchdog>(co_await asio::this_coro::executor);
        WatchdogStopper stopper{watchdog};
        watchdog->guard(transport);
        watchdog->start();
        watchdog->arm(Clock::now() + state->options.tls_handshake_timeout);
        auto accepted_tls = co_await tls::TlsStream::accept(std::make_unique<SharedStream>(transport), state->tls_context);
        watchdog->disarm();
        if (!accepted_tls) {
            log::debug("http: {}: TLS handshake failed: {}", info.peer,
                       watchdog->fired() ? std::string("timed out") : accepted_tls.error().message);
            transport->close();
            co_return;
        }
        watchdog->stop();
        std::shared_ptr<tls::TlsStream> tls_stream(std::move(*accepted_tls));
        info.tls = &tls_stream->session();
        co_await serve_shared(tls_stream, state->handler, state->options, info, state->body_in_flight, &place);
    } catch (const std::exception& e) {
        log::error("http: {}: connection failed: {}", info.peer, e.what());
    } catch (...) {
        log::error("http: {}: connection failed", info.peer);
    }
    transport->close();
}

asio::awaitable<void> refuse_connection(std::shared_ptr<ServerState> state, std::shared_ptr<Stream> stream,
                                        std::string why) {
    Slot slot{state->refusing};
    try {
        auto watchdog = std::make_shared<Watchdog>(co_await asio::this_coro::executor);
        WatchdogStopper stopper{watchdog};
        watchdog->guard(stream);
        watchdog->start();
        auto response = Response::json_error(503, why);
        std::string out = serialize_response_head(response, response.body.size(), true) + response.body;
        if (co_await write_bytes(*stream, *watchdog, out, std::chrono::milliseconds(1000))) {
            std::error_code ignored;
            co_await stream->shutdown_send(ignored);
        }
    } catch (...) {
    }
    stream->close();
}

// Answers (plain) or closes (TLS, or too many refusals already in flight) a connection that
// cannot be served.
void refuse(const std::shared_ptr<ServerState>& state, std::shared_ptr<Stream> stream, asio::any_io_executor strand,
            ConnectionTable::Verdict verdict) {
    bool by_address = verdict == ConnectionTable::Verdict::address_full;
    auto now = Clock::now();
    if (now - state->refusal_logged >= 1s) {
        if (by_address) {
            log::warn("http: {}: {} already holds {} connections, refusing another ({} more refused since the last report)",
                      state->listener, stream->client_address(), state->options.max_connections_per_address,
                      state->refusals_unlogged);
        } else {
            log::warn("http: {}: all {} connections have a request begun and none is idle, refusing {} ({} more refused since the last report)",
                      state->listener, state->options.max_connections, stream->peer_description(),
                      state->refusals_unlogged);
        }
        state->refusal_logged = now;
        state->refusals_unlogged = 0;
    } else {
        ++state->refusals_unlogged;
    }
    if (state->tls_context || state->refusing.load() >= refusal_backlog) {
        stream->close();
        return;
    }
    ++state->refusing;
    std::string why = by_address ? "too many connections from your address, try again later"
                                 : "too many connections, try again later";
    asio::co_spawn(strand, refuse_connection(state, std::move(stream), std::move(why)), asio::detached);
}

void close_on_strands(const std::vector<std::pair<std::weak_ptr<Stream>, asio::any_io_executor>>& streams) {
    for (const auto& [weak, strand] : streams)
        asio::post(strand, [weak = weak] {
            if (auto stream = weak.lock()) stream->close();
        });
}

// The listener is closed: close the idle connections, let the busy ones answer the request they
// are in (their response says Connection: close), and return once every connection has ended, or
// close the rest when options.stop_timeout has passed.
asio::awaitable<void> drain(ServerState& state, asio::any_io_executor executor) {
    close_on_strands(state.connections->stop());
    auto deadline = Clock::now() + state.options.stop_timeout;
    bool forced = false;
    while (!state.connections->empty()) {
        if (!forced && Clock::now() >= deadline) {
            log::warn("http: {}: requests still running {} ms after the stop; closing their connections", state.listener,
                      state.options.stop_timeout.count());
            close_on_strands(state.connections->all());
            forced = true;
        }
        // A handler still waiting on something else (a slow upstream) keeps its connection's
        // coroutine alive after the close: it is abandoned, and ends when its runtime is stopped.
        if (forced && Clock::now() >= deadline + abandon_grace) {
            log::warn("http: {}: handlers still running after their connections were closed; abandoning them", state.listener);
            break;
        }
        asio::steady_timer pause(executor, 10ms);
        std::error_code ignored;
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
}

}  // namespace

std::string serialize_response_head(const Response& response, std::size_t content_length, bool close) {
    std::string_view reason = response.reason;
    if (!reason.empty() && !valid_header_value(reason)) {
        log::warn("http: replacing an invalid reason phrase for status {}", response.status);
        reason = {};
    }
    std::string out = fmt::format("HTTP/1.1 {} {}\r\n", response.status,
                                  reason.empty() ? std::string_view(reason_phrase(response.status)) : reason);
    bool has_date = false;
    for (const auto& h : response.headers) {
        // Framing is ours alone: a handler's Content-Length or Transfer-Encoding would lie.
        if (iequals(h.name, "Content-Length") || iequals(h.name, "Transfer-Encoding") || iequals(h.name, "Connection")) {
            if (iequals(h.name, "Connection") && !close) {
                if (valid_header_value(h.value))
                    out += "Connection: " + h.value + "\r\n";
                else
                    log::warn("http: dropping invalid response header field 'Connection'");
            }
            continue;
        }
        if (!valid_header_name(h.name) || !valid_header_value(h.value)) {
            log::warn("http: dropping invalid response header field '{}'", h.name);
            continue;
        }
        if (iequals(h.name, "Date")) has_date = true;
        out += h.name;
        out += ": ";
        out += h.value;
        out += "\r\n";
    }
    if (!has_date) out += "Date: " + http_date() + "\r\n";
    out += fmt::format("Content-Length: {}\r\n", content_length);
    if (close) out += "Connection: close\r\n";
    out += "\r\n";
    return out;
}

asio::awaitable<void> serve_connection(StreamPtr stream, Handler handler, ServerOptions options,
                                       ConnectionInfo info) {
    std::shared_ptr<Stream> shared(std::move(stream));
    std::atomic<std::size_t> body_in_flight{0};  // this connection's own budget
    try {
        if (info.peer.empty()) info.peer = shared->peer_description();
        co_await serve_shared(shared, handler, options, info, body_in_flight, nullptr);
    } catch (const std::exception& e) {
        log::error("http: {}: connection failed: {}", info.peer, e.what());
    } catch (...) {
        log::error("http: {}: connection failed", info.peer);
    }
    shared->close();
}

asio::awaitable<void> serve(Listener& listener, Handler handler, ServerOptions options,
                            std::shared_ptr<tls::ServerContext> tls_context) {
    auto state = std::make_shared<ServerState>();
    state->handler = std::move(handler);
    state->options = std::move(options);
    state->tls_context = std::move(tls_context);
    state->listener = listener.description();
    state->connections.emplace(state->options.max_connections, state->options.max_connections_per_address,
                               state->options.evict_stalled_headers_after);
    auto executor = co_await asio::this_coro::executor;
    for (;;) {
        std::error_code ec;
        StreamPtr stream = co_await listener.accept(ec);
        if (ec || !stream) {
            if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) break;
            // Out of descriptors and the like: back off instead of spinning, keep serving.
            log::warn("http: {}: accept failed: {}", state->listener, ec.message());
            asio::steady_timer pause(executor, 100ms);
            std::error_code ignored;
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
            continue;
        }
        asio::any_io_executor strand = asio::make_strand(stream->get_executor());
        std::shared_ptr<Stream> transport(std::move(stream));
        auto admission = state->connections->admit(transport->client_address(), strand, transport);
        if (admission.verdict != ConnectionTable::Verdict::admitted) {
            refuse(state, std::move(transport), strand, admission.verdict);
            continue;
        }
        if (admission.victim_strand) {
            log::debug("http: {}: all {} connections taken; closing the one idle longest (from {}) for {}",
                       state->listener, state->options.max_connections, admission.victim_address,
                       transport->peer_description());
            // Its stream is used (and released) on its own strand only: close it there.
            asio::post(admission.victim_strand, [weak = std::move(admission.victim)] {
                if (auto stream = weak.lock()) stream->close();
            });
        }
        asio::co_spawn(strand, run_connection(state, std::move(transport), admission.handle), asio::detached);
    }
    co_await drain(*state, executor);
}

}  // namespace dstack::net::http
