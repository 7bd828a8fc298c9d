// The data path (spec/gateway.md §3): accept on the proxy ports, read an inbound PROXY header when
// configured, sniff the ClientHello without consuming it, route by its server name — the platform's
// label grammar under a domain we hold a certificate for, a custom domain's TXT record otherwise —
// and relay to one of the app's instances, terminating TLS here or passing it through untouched.
// Every step has a deadline; clients, apps and the whole proxy have connection limits.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include "certificate-store.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/tls.hpp"
#include "instance-registry.hpp"
#include "settings.hpp"
#include "txt-cache.hpp"

namespace dstack::applets::gateway {

// What the proxy counts, for Status and /metrics.
struct ProxyCounters {
    std::atomic<std::uint64_t> accepted{0}, active{0};
    std::atomic<std::uint64_t> terminated{0}, passed_through{0}, special{0};
    std::atomic<std::uint64_t> refused_limit{0}, refused_route{0}, refused_hello{0}, refused_backend{0};
    std::atomic<std::uint64_t> handshake_failures{0}, idle_timeouts{0};
    std::atomic<std::uint64_t> bytes_received{0}, bytes_sent{0};
};

class Proxy {
public:
    // `gateway_handler` answers the platform's own names (gateway.<base_domain>: /health,
    // /.dstack/acme-info, /.dstack/app-info) over the terminated TLS connection.
    Proxy(const Settings& settings, std::shared_ptr<CertificateStore> certificates,
          std::shared_ptr<InstanceRegistry> registry, net::http::Handler gateway_handler);
    ~Proxy();

    // Binds every proxy port (SO_REUSEADDR, backlog 4096) and starts accepting on `executor`.
    Result<void> start(asio::any_io_executor executor);
    void stop();
    std::vector<std::uint16_t> bound_ports() const;

    const ProxyCounters& counters() const { return counters_; }
    std::uint64_t connections_of_app(const std::string& app_id) const;

private:
    struct Connection;
    asio::awaitable<void> accept_loop(std::shared_ptr<asio::ip::tcp::acceptor> acceptor);
    asio::awaitable<void> serve(asio::ip::tcp::socket socket);
    asio::awaitable<Result<void>> handle(std::shared_ptr<Connection> connection);
    bool take_client_slot(const std::string& client_key);
    void release_client_slot(const std::string& client_key);

    Settings settings_;
    std::shared_ptr<CertificateStore> certificates_;
    std::shared_ptr<InstanceRegistry> registry_;
    net::http::Handler gateway_handler_;
    std::shared_ptr<net::tls::ServerContext> tls_plain_, tls_h2_;
    std::shared_ptr<TxtCache> txt_cache_;
    std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors_;
    ProxyCounters counters_;
    mutable std::mutex clients_mutex_;
    std::map<std::string, std::size_t> clients_;
    std::map<std::string, std::size_t> apps_;
};

}  // namespace dstack::applets::gateway
