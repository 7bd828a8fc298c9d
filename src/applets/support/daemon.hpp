// The one way a daemon runs: a runtime with N threads, listeners from addresses (or the sockets
// systemd passed), one "NAME: listening on ADDR" line on stdout per listener (tests and operators
// read it), and a graceful stop on SIGINT/SIGTERM: no new connections, idle ones closed, requests
// in flight answered within the server's stop_timeout; a second signal stops at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/result.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/net/runtime.hpp"

namespace dstack::applets {

class Daemon {
public:
    Daemon(std::string name, int threads);

    net::Runtime& runtime() { return runtime_; }

    // Each address as net::listen_address takes it; "systemd" takes every inherited socket.
    Result<void> listen(const std::vector<std::string>& addresses);

    // Listeners with a handler and server options of their own (a daemon serving several
    // services, one per socket, each with the limits that fit its clients).
    Result<void> listen(const std::vector<std::string>& addresses, net::http::Handler handler,
                        net::http::ServerOptions options);
    // The same over TLS (each connection's handshake first).
    Result<void> listen_tls(const std::vector<std::string>& addresses, net::http::Handler handler,
                            net::http::ServerOptions options, std::shared_ptr<net::tls::ServerContext> tls_context);

    // Serves HTTP on every listener until stopped; returns the exit status (0 after a graceful stop).
    int serve_http(net::http::Handler handler, net::http::ServerOptions options,
                   std::shared_ptr<net::tls::ServerContext> tls_context = nullptr);
    // The same, each listener with the handler and options it was given.
    int serve();
    // Closes every listener from any thread (a handler's "finish"): serve() then drains and returns 0.
    void stop();

private:
    std::string name_;
    net::Runtime runtime_;
    std::vector<net::ListenerPtr> listeners_;
    struct Service {
        net::http::Handler handler;
        net::http::ServerOptions options;
        std::shared_ptr<net::tls::ServerContext> tls_context;  // null: plain, or the daemon-wide one
    };
    std::vector<Service> services_;  // parallel to listeners_
    std::shared_ptr<net::tls::ServerContext> tls_context_;
};

}  // namespace dstack::applets
