#include <doctest/doctest.h>

#include <csignal>
#include <stdexcept>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "dstack/base/log.hpp"
#include "dstack/net/runtime.hpp"

using namespace dstack;

namespace {
// Coroutines take their state as parameters: a capturing lambda coroutine would outlive its captures.
asio::awaitable<void> fail_soon() {
    throw std::runtime_error("boom");
    co_return;
}

asio::awaitable<void> finish_then_signal(int& finished) {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
    co_await timer.async_wait(asio::use_awaitable);
    ++finished;
    std::raise(SIGTERM);
}
}  // namespace

TEST_CASE("net runtime: a failing coroutine is contained and a signal stops the loop") {
    auto saved = log::settings();
    log::configure({log::Level::off});
    net::Runtime runtime(2);
    int finished = 0;
    runtime.spawn(fail_soon(), "failing task");
    runtime.spawn(finish_then_signal(finished), "good task");
    bool stopped = false;
    runtime.stop_on_signals([&] { stopped = true; });
    CHECK(runtime.run() == 0);
    log::configure(saved);
    CHECK(finished == 1);
    CHECK(stopped);
}
