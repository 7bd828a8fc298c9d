#include "proxy.hpp"

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "dstack/app/gateway-route.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/log.hpp"
#include "dstack/net/connect.hpp"
#include "dstack/net/proxy-protocol.hpp"
#include "dstack/net/socket-stream.hpp"
#include "dstack/net/stream-watchdog.hpp"
#include "dstack/net/tls-client-hello.hpp"
#include "relay.hpp"

namespace dstack::applets::gateway {
namespace {

using Clock = std::chrono::steady_clock;

// The sniffed bytes first, then the transport: how TLS termination reads a ClientHello the
// proxy has already taken off the socket.
class PrefixedStream : public net::Stream {
public:
    PrefixedStream(std::shared_ptr<net::Stream> inner, Bytes prefix) : inner_(std::move(inner)), prefix_(std::move(prefix)) {}
    asio::awaitable<std::size_t> read_some(std::span<std::uint8_t> buffer, std::error_code& ec) override {
        if (offset_ < prefix_.size()) {
            ec.clear();
            std::size_t n = std::min(buffer.size(), prefix_.size() - offset_);
            std::copy_n(prefix_.begin() + static_cast<std::ptrdiff_t>(offset_), n, buffer.begin());
            offset_ += n;
            if (offset_ == prefix_.size()) Bytes().swap(prefix_), offset_ = 0;
            co_return n;
        }
        co_return co_await inner_->read_some(buffer, ec);
    }
    asio::awaitable<void> write_all(ByteView data, std::error_code& ec) override { return inner_->write_all(data, ec); }
    asio::awaitable<void> shutdown_send(std::error_code& ec) override { return inner_->shutdown_send(ec); }
    void close() override { inner_->close(); }
    asio::any_io_executor get_executor() override { return inner_->get_executor(); }
    std::string peer_description() const override { return inner_->peer_description(); }
    std::string client_address() const override { return inner_->client_address(); }

private:
    std::shared_ptr<net::Stream> inner_;
    Bytes prefix_;
    std::size_t offset_ = 0;
};

// Closes every stream it guards when the connection's total lifetime is over.
class LifetimeLimit : public std::enable_shared_from_this<LifetimeLimit> {
public:
    LifetimeLimit(asio::any_io_executor executor, std::chrono::milliseconds limit) : timer_(std::move(executor), limit) {}
    void start() {
        timer_.async_wait([self = shared_from_this()](std::error_code ec) {
            if (ec) return;
            self->fired_ = true;
            for (auto& weak : self->streams_) {
                if (auto stream = weak.lock()) stream->close();
            }
        });
    }
    void guard(const std::shared_ptr<net::Stream>& stream) { streams_.push_back(stream); }
    void cancel() { timer_.cancel(); }
    bool fired() const { return fired_; }

private:
    asio::steady_timer timer_;
    std::vector<std::weak_ptr<net::Stream>> streams_;
    bool fired_ = false;
};

struct LifetimeCanceller {
    std::shared_ptr<LifetimeLimit> limit;
    ~LifetimeCanceller() { limit->cancel(); }
};

// A TLS alert record (TLS 1.2 framing, as servers send before a version is agreed).
Bytes tls_alert(std::uint8_t description) { return Bytes{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description}; }
constexpr std::uint8_t alert_handshake_failure = 40;
constexpr std::uint8_t alert_decode_error = 50;
constexpr std::uint8_t alert_internal_error = 80;
constexpr std::uint8_t alert_unrecognized_name = 112;

bool looks_like_http(ByteView bytes) {
    static constexpr std::string_view methods[] = {"GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC", "CONN"};
    if (bytes.size() < 4) return false;
    std::string_view start(reinterpret_cast<const char*>(bytes.data()), 4);
    return std::find(std::begin(methods), std::end(methods), start) != std::end(methods);
}

std::string plain_http_response(int status, std::string_view reason, std::string_view body) {
    return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: "
                       "close\r\n\r\n{}",
                       status, reason, body.size(), body);
}

bool port_allowed(const Backend& backend, std::uint16_t port) {
    if (!backend.policy) return false;  // registered, policy unknown: fail closed (§3.10)
    if (!backend.policy->restrict_mode) return true;
    return backend.policy->ports.count(port) != 0;
}

bool wants_proxy_header(const Backend& backend, std::uint16_t port) {
    if (!backend.policy) return false;
    auto it = backend.policy->ports.find(port);
    return it != backend.policy->ports.end() && it->second;
}

struct Route {
    Route() = default;
    app::GatewayTarget target;
    bool custom_domain = false;
    std::string server_name;
};

// One racing connect: the first backend to answer wins, the others are closed.
struct Race {
    explicit Race(asio::any_io_executor executor) : done(std::move(executor)) {}
    asio::steady_timer done;
    int pending = 0;
    std::shared_ptr<net::Stream> winner;
    std::size_t winner_index = 0;
    std::string last_error;
};

asio::awaitable<void> race_one(std::shared_ptr<Race> race, std::size_t index, std::string host, std::uint16_t port,
                               std::chrono::milliseconds timeout) {
    auto executor = co_await asio::this_coro::executor;
    auto connected = co_await net::connect_tcp(executor, host, port, timeout);
    if (connected && !race->winner) {
        race->winner = std::shared_ptr<net::Stream>(std::move(connected).value());
        race->winner_index = index;
    } else if (connected) {
        (*connected)->close();  // lost the race
    } else {
        race->last_error = connected.error().message;
    }
    if (--race->pending == 0 || race->winner) race->done.cancel();
}

}  // namespace

struct Proxy::Connection {
    std::shared_ptr<net::Stream> client;
    std::string peer;
    std::string client_ip, local_ip;
    std::uint16_t client_port = 0, local_port = 0;
    std::shared_ptr<LifetimeLimit> lifetime;
};

Proxy::Proxy(const Settings& settings, std::shared_ptr<CertificateStore> certificates,
             std::shared_ptr<InstanceRegistry> registry, net::http::Handler gateway_handler)
    : settings_(settings),
      certificates_(std::move(certificates)),
      registry_(std::move(registry)),
      gateway_handler_(std::move(gateway_handler)) {
    net::dns::Options dns;
    dns.servers = settings_.app_address_dns_servers;
    dns.timeout = settings_.timeouts.dns_resolve;
    txt_cache_ = std::make_shared<TxtCache>(dns);
}

Proxy::~Proxy() { stop(); }

Result<void> Proxy::start(asio::any_io_executor executor) {
    // The contexts' own certificate is never served: a connection is only terminated for a name
    // the store covers (routing decides before the handshake), so the callback always answers.
    DSTACK_TRY(auto fallback, make_self_signed_wildcard("invalid", system_now()));
    for (int h2 = 0; h2 < 2; ++h2) {
        net::tls::ServerConfig config;
        config.certificate = fallback.pem;
        std::weak_ptr<CertificateStore> weak = certificates_;
        config.choose_certificate = [weak](std::string_view name) -> std::optional<net::tls::CertifiedKey> {
            auto store = weak.lock();
            if (!store) return std::nullopt;
            return store->for_server_name(name);
        };
        if (h2) config.alpn = {"h2"};
        bool has12 = std::count(settings_.tls_versions.begin(), settings_.tls_versions.end(), "1.2") != 0;
        bool has13 = std::count(settings_.tls_versions.begin(), settings_.tls_versions.end(), "1.3") != 0;
        if (!has12 && !has13) return make_error("tls_versions: none of \"1.2\" and \"1.3\" is enabled");
        config.min_version = has12 ? net::tls::Version::tls1_2 : net::tls::Version::tls1_3;
        config.max_version = has13 ? net::tls::Version::tls1_3 : net::tls::Version::tls1_2;
        config.handshake_timeout = settings_.timeouts.handshake;
        DSTACK_TRY(auto context, net::tls::make_server_context(std::move(config)));
        (h2 ? tls_h2_ : tls_plain_) = std::move(context);
    }
    for (std::uint16_t port : settings_.proxy_ports) {
        std::error_code ec;
        auto address = asio::ip::make_address(settings_.proxy_host, ec);
        if (ec) return make_error("proxy listen address {:?}: {}", settings_.proxy_host, ec.message());
        auto acceptor = std::make_shared<asio::ip::tcp::acceptor>(executor);
        asio::ip::tcp::endpoint endpoint(address, port);
        acceptor->open(endpoint.protocol(), ec);
        if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) acceptor->bind(endpoint, ec);
        if (!ec) acceptor->listen(4096, ec);
        if (ec) return make_error("proxy: cannot listen on {}:{}: {}", settings_.proxy_host, port, ec.message());
        acceptors_.push_back(acceptor);
    }
    for (auto& acceptor : acceptors_) {
        asio::co_spawn(executor, accept_loop(acceptor), asio::detached);
    }
    return {};
}

void Proxy::stop() {
    for (auto& acceptor : acceptors_) {
        std::error_code ignored;
        acceptor->close(ignored);
    }
}

std::vector<std::uint16_t> Proxy::bound_ports() const {
    std::vector<std::uint16_t> out;
    for (const auto& acceptor : acceptors_) {
        std::error_code ec;
        auto endpoint = acceptor->local_endpoint(ec);
        if (!ec) out.push_back(endpoint.port());
    }
    return out;
}

std::uint64_t Proxy::connections_of_app(const std::string& app_id) const {
    std::lock_guard lock(clients_mutex_);
    auto it = apps_.find(app_id);
    return it == apps_.end() ? 0 : it->second;
}

bool Proxy::take_client_slot(const std::string& client_key) {
    std::lock_guard lock(clients_mutex_);
    if (settings_.max_connections != 0 && counters_.active.load() >= settings_.max_connections) return false;
    if (!client_key.empty() && settings_.max_connections_per_client != 0) {
        auto& count = clients_[client_key];
        if (count >= settings_.max_connections_per_client) return false;
        ++count;
    }
    ++counters_.active;
    return true;
}

void Proxy::release_client_slot(const std::string& client_key) {
    std::lock_guard lock(clients_mutex_);
    --counters_.active;
    if (client_key.empty() || settings_.max_connections_per_client == 0) return;
    auto it = clients_.find(client_key);
    if (it != clients_.end() && --it->second == 0) clients_.erase(it);
}

asio::awaitable<void> Proxy::accept_loop(std::shared_ptr<asio::ip::tcp::acceptor> acceptor) {
    for (;;) {
        // Each connection gets its own strand: its coroutines never run at the same time.
        asio::ip::tcp::socket socket(asio::make_strand(acceptor->get_executor()));
        std::error_code ec;
        co_await acceptor->async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (!acceptor->is_open()) co_return;
            if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
                // Out of file descriptors: back off instead of spinning on accept.
                log::warn("proxy: accept: {}", ec.message());
                asio::steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(100));
                co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            }
            continue;
        }
        ++counters_.accepted;
        socket.set_option(asio::ip::tcp::no_delay(true), ec);
        auto executor = socket.get_executor();
        asio::co_spawn(executor, serve(std::move(socket)), asio::detached);
    }
}

asio::awaitable<void> Proxy::serve(asio::ip::tcp::socket socket) {
    auto connection = std::make_shared<Connection>();
    std::error_code ec;
    auto remote = socket.remote_endpoint(ec);
    auto local = socket.local_endpoint(ec);
    if (!ec) {
        connection->client_ip = remote.address().to_string();
        connection->client_port = remote.port();
        connection->local_ip = local.address().to_string();
        connection->local_port = local.port();
    }
    connection->client = std::shared_ptr<net::Stream>(net::make_tcp_stream(std::move(socket)));
    connection->peer = connection->client->peer_description();
    std::string client_key = connection->client->client_address();
    if (!take_client_slot(client_key)) {
        ++counters_.refused_limit;
        log::debug("proxy: {}: refused: connection limit", connection->peer);
        connection->client->close();
        co_return;
    }
    auto executor = co_await asio::this_coro::executor;
    connection->lifetime = std::make_shared<LifetimeLimit>(executor, settings_.timeouts.total);
    connection->lifetime->guard(connection->client);
    connection->lifetime->start();
    Result<void> handled;
    {
        LifetimeCanceller canceller{connection->lifetime};
        handled = co_await handle(connection);
    }
    connection->client->close();
    release_client_slot(client_key);
    if (!handled) log::debug("proxy: {}: {}", connection->peer, handled.error().message);
}

asio::awaitable<Result<void>> Proxy::handle(std::shared_ptr<Connection> connection) {
    auto executor = co_await asio::this_coro::executor;
    auto& client = connection->client;
    Bytes data;
    std::size_t header_size = 0;
    auto watchdog = std::make_shared<net::Watchdog>(executor);
    watchdog->guard(client);
    watchdog->start();
    net::WatchdogStopper stopper{watchdog};

    // 1. The inbound PROXY header, or one made from the socket's addresses.
    net::ProxyHeader inbound;
    if (settings_.inbound_pp_enabled) {
        watchdog->arm(Clock::now() + settings_.timeouts.pp_header);
        for (;;) {
            auto parsed = net::parse_proxy_header(data);
            if (parsed.status == net::ProxyParseStatus::complete) {
                inbound = std::move(parsed.header);
                header_size = parsed.consumed;
                break;
            }
            if (parsed.status == net::ProxyParseStatus::invalid) {
                ++counters_.refused_hello;
                co_return make_error("PROXY header: {}", parsed.error);
            }
            if (data.size() >= net::max_proxy_v2_bytes) {
                ++counters_.refused_hello;
                co_return make_error("PROXY header: longer than {} bytes", net::max_proxy_v2_bytes);
            }
            std::size_t old = data.size();
            data.resize(old + 512);
            std::error_code ec;
            std::size_t n = co_await client->read_some(std::span(data.data() + old, 512), ec);
            data.resize(old + n);
            if (ec) {
                if (watchdog->fired()) co_return make_error("PROXY header: none within {} ms", settings_.timeouts.pp_header.count());
                co_return make_error("PROXY header: {}", ec.message());
            }
        }
    } else {
        inbound = net::proxy_header_from_addresses(connection->client_ip, connection->client_port, connection->local_ip,
                                                   connection->local_port);
    }

    // 2. The ClientHello, sniffed: kept whole to be replayed to TLS or to the backend.
    watchdog->arm(Clock::now() + settings_.timeouts.handshake);
    net::ClientHelloScan hello;
    for (;;) {
        ByteView seen(data.data() + header_size, data.size() - header_size);
        hello = net::scan_client_hello(seen);
        if (hello.status == net::ClientHelloStatus::complete) break;
        if (hello.status == net::ClientHelloStatus::invalid) {
            ++counters_.refused_hello;
            std::error_code ignored;
            if (looks_like_http(seen)) {
                std::string text = plain_http_response(400, "Bad Request",
                                                       "This port speaks TLS: use https:// with a host name under the "
                                                       "gateway's domain.\n");
                co_await client->write_all(ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), ignored);
            } else if (!seen.empty() && seen[0] == 0x16) {
                co_await client->write_all(tls_alert(alert_decode_error), ignored);  // a TLS client: tell it why
            }
            co_return make_error("ClientHello: {}", hello.error);
        }
        if (seen.size() >= net::max_client_hello_bytes) {
            ++counters_.refused_hello;
            co_return make_error("ClientHello: larger than {} bytes", net::max_client_hello_bytes);
        }
        std::size_t old = data.size();
        data.resize(old + 4096);
        std::error_code ec;
        std::size_t n = co_await client->read_some(std::span(data.data() + old, 4096), ec);
        data.resize(old + n);
        if (ec) {
            ++counters_.refused_hello;
            if (watchdog->fired()) co_return make_error("ClientHello: none within {} ms", settings_.timeouts.handshake.count());
            co_return make_error("ClientHello: {}", ec == asio::error::eof ? "the client closed first" : ec.message());
        }
    }
    Bytes hello_bytes(data.begin() + static_cast<std::ptrdiff_t>(header_size), data.end());
    Bytes().swap(data);

    // 3. Route by the server name.
    if (hello.server_name.empty()) {
        ++counters_.refused_route;
        std::error_code ignored;
        co_await client->write_all(tls_alert(alert_unrecognized_name), ignored);
        co_return make_error("no server name (SNI) in the ClientHello");
    }
    Route route;
    route.server_name = hello.server_name;
    auto split = app::split_server_name(hello.server_name);
    if (!split) {
        ++counters_.refused_route;
        std::error_code ignored;
        co_await client->write_all(tls_alert(alert_unrecognized_name), ignored);
        co_return make_error("{}", split.error().message);
    }
    if (certificates_->covers(split->parent)) {
        auto target = app::parse_gateway_label(split->first_label);
        if (!target) {
            ++counters_.refused_route;
            std::error_code ignored;
            co_await client->write_all(tls_alert(alert_unrecognized_name), ignored);
            co_return make_error("{}: {}", hello.server_name, target.error().message);
        }
        route.target = std::move(target).value();
    } else {
        watchdog->arm(Clock::now() + settings_.timeouts.dns_resolve);
        Result<app::GatewayTarget> found = make_error("no {} TXT record", settings_.app_address_ns_prefix);
        std::vector<std::string> names{settings_.app_address_ns_prefix + "." + hello.server_name};
        if (settings_.app_address_ns_compat && settings_.app_address_ns_prefix != "_tapp-address")
            names.push_back("_tapp-address." + hello.server_name);
        names.push_back(settings_.app_address_ns_prefix + "-wildcard." + split->parent);
        for (const auto& name : names) {
            auto records = co_await txt_cache_->lookup(executor, name);
            if (!records || records->empty()) continue;
            found = app::parse_app_address(records->front());
            break;
        }
        watchdog->disarm();
        if (!found) {
            ++counters_.refused_route;
            std::error_code ignored;
            co_await client->write_all(tls_alert(alert_unrecognized_name), ignored);
            co_return make_error("{}: not a domain of this gateway, and {}", hello.server_name, found.error().message);
        }
        route.target = std::move(found).value();
        route.custom_domain = true;
        route.target.tls_passthrough = true;
    }
    watchdog->disarm();

    // 4. The gateway's own names, answered here over TLS.
    const auto& target = route.target;
    if (!route.custom_domain && !target.tls_passthrough && (target.id == "gateway" || target.id == "health")) {
        ++counters_.special;
        auto tls = co_await net::tls::TlsStream::accept(std::make_unique<PrefixedStream>(client, std::move(hello_bytes)),
                                                       tls_plain_);
        if (!tls) {
            ++counters_.handshake_failures;
            co_return std::move(tls).take_error();
        }
        net::http::ServerOptions options;
        options.limits.max_body_bytes = 64 * 1024;
        options.idle_timeout = std::chrono::seconds(10);
        net::http::ConnectionInfo info;
        info.peer = connection->peer;
        info.listener = "proxy";
        info.tls = &(*tls)->session();
        net::http::Handler handler = gateway_handler_;
        if (target.id == "health") {
            handler = [](net::http::Request& request, const net::http::ConnectionInfo&) -> asio::awaitable<net::http::Response> {
                net::http::Response response;
                response.status = request.target == "/" ? 200 : 404;
                co_return response;
            };
        }
        co_await net::http::serve_connection(std::move(tls).value(), handler, options, info);
        co_return Result<void>();
    }

    // 5. The backends: an instance, or an app's healthiest instances, allowed on this port.
    std::vector<Backend> candidates;
    std::string app_id;
    bool localhost = target.id == "localhost" && settings_.insecure_localhost_backend && !route.custom_domain;
    if (localhost) {
        Backend backend;
        backend.instance_id = "localhost";
        backend.ip = "127.0.0.1";
        backend.policy = PortPolicy{};
        backend.connections = std::make_shared<std::atomic<std::uint64_t>>(0);
        candidates.push_back(std::move(backend));
        app_id = "localhost";
    } else {
        auto selected = registry_->select(target.id, settings_.connect_top_n, system_now(),
                                          settings_.timeouts.handshake_stale.count() / 1000,
                                          settings_.timeouts.cache_top_n.count() / 1000);
        if (!selected) {
            ++counters_.refused_route;
            std::error_code ignored;
            co_await client->write_all(tls_alert(alert_unrecognized_name), ignored);
            co_return make_error("{}: {}", hello.server_name, selected.error().message);
        }
        app_id = selected->app_id;
        std::size_t before = selected->backends.size();
        for (auto& backend : selected->backends) {
            if (port_allowed(backend, target.port)) candidates.push_back(std::move(backend));
        }
        if (candidates.empty()) {
            ++counters_.refused_route;
            std::error_code ignored;
            co_await client->write_all(tls_alert(alert_handshake_failure), ignored);
            if (before == 0) co_return make_error("{}: app {} has no healthy instance", hello.server_name, app_id);
            co_return make_error("port {} denied by app port policy for {} ({} candidate(s))", target.port, target.id, before);
        }
    }

    // Per-app limit: every live connection to the app through this node counts.
    {
        std::lock_guard lock(clients_mutex_);
        auto& count = apps_[app_id];
        if (settings_.max_connections_per_app != 0 && count >= settings_.max_connections_per_app) {
            ++counters_.refused_limit;
            if (count == 0) apps_.erase(app_id);
            co_return make_error("app connection limit exceeded: {}/{}", count, settings_.max_connections_per_app);
        }
        ++count;
    }
    struct AppSlot {
        Proxy* proxy;
        std::string app_id;
        ~AppSlot() {
            std::lock_guard lock(proxy->clients_mutex_);
            auto it = proxy->apps_.find(app_id);
            if (it != proxy->apps_.end() && --it->second == 0) proxy->apps_.erase(it);
        }
    } app_slot{this, app_id};

    // 6. Connect: one candidate directly, several raced (the first to answer wins).
    std::shared_ptr<net::Stream> backend;
    std::size_t chosen = 0;
    {
        auto race = std::make_shared<Race>(executor);
        race->done.expires_at(Clock::time_point::max());
        race->pending = static_cast<int>(candidates.size());
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            asio::co_spawn(executor, race_one(race, i, candidates[i].ip, target.port, settings_.timeouts.connect), asio::detached);
        }
        while (race->pending > 0 && !race->winner) {
            std::error_code ignored;
            co_await race->done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        }
        if (!race->winner) {
            ++counters_.refused_backend;
            std::error_code ignored;
            co_await client->write_all(tls_alert(alert_internal_error), ignored);
            co_return make_error("{}: no backend answered on port {}: {}", hello.server_name, target.port, race->last_error);
        }
        backend = race->winner;
        chosen = race->winner_index;
    }
    connection->lifetime->guard(backend);
    const Backend& picked = candidates[chosen];
    picked.connections->fetch_add(1);
    struct InstanceSlot {
        std::shared_ptr<std::atomic<std::uint64_t>> counter;
        ~InstanceSlot() { counter->fetch_sub(1); }
    } instance_slot{picked.connections};

    std::error_code ec;
    if (wants_proxy_header(picked, target.port)) {
        inbound.tlvs.clear();  // the load balancer's TLVs are for us, not for the app
        co_await backend->write_all(net::encode_proxy_header(inbound), ec);
        if (ec) co_return make_error("backend {}: {}", picked.instance_id, ec.message());
    }

    RelayOptions relay_options;
    relay_options.idle = settings_.timeouts.idle;
    RelayCounters relay_counters{&counters_.bytes_received, &counters_.bytes_sent};

    // 7a. Passthrough: the ClientHello goes on untouched.
    if (target.tls_passthrough) {
        ++counters_.passed_through;
        co_await backend->write_all(hello_bytes, ec);
        if (ec) co_return make_error("backend {}: {}", picked.instance_id, ec.message());
        auto result = co_await relay(client, backend, relay_options, relay_counters);
        if (result.ended == "idle timeout") ++counters_.idle_timeouts;
        co_return Result<void>();
    }

    // 7b. Termination: TLS here (h2 offered only with `g`), plaintext to the backend.
    auto tls = co_await net::tls::TlsStream::accept(std::make_unique<PrefixedStream>(client, std::move(hello_bytes)),
                                                   target.h2 ? tls_h2_ : tls_plain_);
    if (!tls) {
        ++counters_.handshake_failures;
        backend->close();
        co_return std::move(tls).take_error();
    }
    ++counters_.terminated;
    std::shared_ptr<net::Stream> secured(std::move(tls).value());
    connection->lifetime->guard(secured);
    auto result = co_await relay(secured, backend, relay_options, relay_counters);
    if (result.ended == "idle timeout") ++counters_.idle_timeouts;
    co_return Result<void>();
}

}  // namespace dstack::applets::gateway
