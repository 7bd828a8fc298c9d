// The asio runtime every service runs on: one io_context driven by a few threads, coroutines
// spawned with errors logged (never escaping), and SIGINT/SIGTERM stopping it cleanly.
#pragma once

#include <functional>
#include <string>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

namespace dstack::net {

class Runtime {
public:
    explicit Runtime(int threads = 1);

    asio::io_context& context() { return context_; }
    asio::any_io_executor executor() { return context_.get_executor(); }

    // Starts a coroutine; an exception it throws is logged with `what` and stops nothing else.
    void spawn(asio::awaitable<void> task, std::string what);

    // Stops on SIGINT or SIGTERM (then runs `on_stop` on the io_context first, if given).
    void stop_on_signals(std::function<void()> on_stop = {});

    // Runs until stop() or until no work is left. Returns the exit status to use.
    int run();
    void stop();

private:
    asio::io_context context_;
    int threads_;
};

}  // namespace dstack::net
