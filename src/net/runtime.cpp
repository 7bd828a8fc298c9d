#include "dstack/net/runtime.hpp"

#include <csignal>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/signal_set.hpp>

#include "dstack/base/log.hpp"

namespace dstack::net {

Runtime::Runtime(int threads) : context_(threads), threads_(threads < 1 ? 1 : threads) {}

void Runtime::spawn(asio::awaitable<void> task, std::string what) {
    asio::co_spawn(context_, std::move(task), [what = std::move(what)](std::exception_ptr error) {
        if (!error) return;
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            log::error("{}: {}", what, e.what());
        } catch (...) {
            log::error("{}: unknown exception", what);
        }
    });
}

void Runtime::stop_on_signals(std::function<void()> on_stop) {
    // A peer closing a socket must give EPIPE, not kill the process.
    std::signal(SIGPIPE, SIG_IGN);
    auto signals = std::make_shared<asio::signal_set>(context_, SIGINT, SIGTERM);
    signals->async_wait([this, signals, on_stop = std::move(on_stop)](const std::error_code& ec, int signal) {
        if (ec) return;
        log::info("received signal {}, stopping", signal);
        if (on_stop) on_stop();
        context_.stop();
    });
}

int Runtime::run() {
    std::vector<std::thread> extra;
    for (int i = 1; i < threads_; ++i) extra.emplace_back([this] { context_.run(); });
    context_.run();
    for (auto& t : extra) t.join();
    return 0;
}

void Runtime::stop() { context_.stop(); }

}  // namespace dstack::net
