#include "support/daemon.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>

#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include "dstack/base/log.hpp"
#include "support/systemd-notify.hpp"

namespace dstack::applets {
namespace {

asio::awaitable<void> serve_then_count(net::Listener& listener, net::http::Handler handler, net::http::ServerOptions options,
                                       std::shared_ptr<net::tls::ServerContext> tls_context,
                                       std::shared_ptr<std::atomic<std::size_t>> serving, net::Runtime* runtime) {
    co_await net::http::serve(listener, std::move(handler), std::move(options), std::move(tls_context));
    if (serving->fetch_sub(1) == 1) runtime->stop();  // the last one has drained
}

// The first signal closes the listeners (the servers then drain and the runtime stops when the
// last one is done); a second one stops at once.
asio::awaitable<void> stop_on_signals(asio::signal_set& signals, std::vector<net::ListenerPtr>& listeners,
                                      std::chrono::milliseconds stop_timeout, net::Runtime* runtime) {
    int signal = co_await signals.async_wait(asio::use_awaitable);
    log::info("received signal {}: stopping (requests in flight get up to {} ms)", signal, stop_timeout.count());
    for (auto& listener : listeners) listener->close();
    signal = co_await signals.async_wait(asio::use_awaitable);
    log::warn("received signal {} again: stopping now", signal);
    runtime->stop();
}

// WATCHDOG=1 while the event loop turns: a wedged runtime stops the pings and systemd restarts
// the service. Stops with the runtime.
asio::awaitable<void> ping_watchdog(std::chrono::milliseconds interval) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        if (auto sent = systemd_notify("WATCHDOG=1"); !sent) log::warn("systemd watchdog: {}", sent.error().message);
        timer.expires_after(interval);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

}  // namespace

Daemon::Daemon(std::string name, int threads) : name_(std::move(name)), runtime_(threads) {}

Result<void> Daemon::listen(const std::vector<std::string>& addresses) {
    for (const auto& address : addresses) {
        if (address == "systemd") {
            auto inherited = net::listen_systemd(runtime_.executor());
            if (!inherited) return std::move(inherited).take_error().context("systemd sockets");
            if (inherited->empty()) return make_error("--listen systemd: this process was not given sockets by systemd");
            for (auto& listener : *inherited) listeners_.push_back(std::move(listener));
            continue;
        }
        auto listener = net::listen_address(runtime_.executor(), address);
        if (!listener) return std::move(listener).take_error();
        listeners_.push_back(std::move(*listener));
    }
    if (listeners_.empty()) return make_error("no address to listen on");
    return {};
}

Result<void> Daemon::listen(const std::vector<std::string>& addresses, net::http::Handler handler,
                            net::http::ServerOptions options) {
    auto before = listeners_.size();
    DSTACK_CHECK(listen(addresses));
    services_.resize(before);
    services_.resize(listeners_.size(), Service{std::move(handler), std::move(options), nullptr});
    return {};
}

Result<void> Daemon::listen_tls(const std::vector<std::string>& addresses, net::http::Handler handler,
                                net::http::ServerOptions options, std::shared_ptr<net::tls::ServerContext> tls_context) {
    if (!tls_context) return make_error("listen_tls: no TLS context");
    auto before = listeners_.size();
    DSTACK_CHECK(listen(addresses));
    services_.resize(before);
    services_.resize(listeners_.size(), Service{std::move(handler), std::move(options), std::move(tls_context)});
    return {};
}

int Daemon::serve_http(net::http::Handler handler, net::http::ServerOptions options,
                       std::shared_ptr<net::tls::ServerContext> tls_context) {
    services_.assign(listeners_.size(), Service{std::move(handler), std::move(options), nullptr});
    tls_context_ = std::move(tls_context);
    return serve();
}

void Daemon::stop() {
    asio::post(runtime_.executor(), [this] {
        for (auto& listener : listeners_) listener->close();
    });
}

int Daemon::serve() {
    services_.resize(listeners_.size());
    const auto& tls_context = tls_context_;
    // A peer closing a socket must give EPIPE, not kill the process.
    std::signal(SIGPIPE, SIG_IGN);
    // Signals are caught before the "listening on" lines go out: whoever reads one may stop us at once.
    asio::signal_set signals(runtime_.context(), SIGINT, SIGTERM);
    // The longest stop timeout of the services bounds the graceful stop.
    std::chrono::milliseconds stop_timeout{0};
    for (const auto& service : services_) stop_timeout = std::max(stop_timeout, service.options.stop_timeout);
    runtime_.spawn(stop_on_signals(signals, listeners_, stop_timeout, &runtime_), "signal handling");
    auto serving = std::make_shared<std::atomic<std::size_t>>(listeners_.size());
    for (std::size_t i = 0; i < listeners_.size(); ++i) {
        auto& listener = listeners_[i];
        fmt::print("{}: listening on {}\n", name_, listener->description());
        auto context = services_[i].tls_context ? services_[i].tls_context : tls_context;
        runtime_.spawn(serve_then_count(*listener, services_[i].handler, services_[i].options, context, serving, &runtime_),
                       fmt::format("{} on {}", name_, listener->description()));
    }
    std::fflush(stdout);
    if (auto ready = systemd_notify("READY=1"); !ready) log::warn("systemd notification: {}", ready.error().message);
    if (auto interval = systemd_watchdog_interval()) runtime_.spawn(ping_watchdog(*interval), "systemd watchdog");

    int status = runtime_.run();
    return status;
}

}  // namespace dstack::applets
