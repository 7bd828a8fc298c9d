#include "relay.hpp"

#include <algorithm>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/error.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace dstack::applets::gateway {
namespace {

constexpr std::size_t small_buffer = 4 * 1024;
constexpr std::size_t large_buffer = 64 * 1024;

struct RelayState {
    explicit RelayState(asio::any_io_executor executor) : done(executor), watchdog(std::move(executor)) {}
    std::shared_ptr<net::Stream> client, backend;
    std::uint64_t progress = 0;  // bumped by every read and write
    int running = 2;             // directions still copying
    bool failed = false, idle_fired = false;
    std::string ended;
    asio::steady_timer done;      // cancelled when the last direction ends
    asio::steady_timer watchdog;

    void close_both(std::string why) {
        if (ended.empty()) ended = std::move(why);
        failed = true;
        client->close();
        backend->close();
    }
};

bool is_disconnect(const std::error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::error::connection_aborted || ec == asio::error::operation_aborted;
}

asio::awaitable<void> copy(std::shared_ptr<RelayState> state, bool from_client, RelayCounters counters,
                           std::uint64_t* moved) {
    std::shared_ptr<net::Stream> from = from_client ? state->client : state->backend;
    std::shared_ptr<net::Stream> to = from_client ? state->backend : state->client;
    std::vector<std::uint8_t> buffer(small_buffer);
    std::atomic<std::uint64_t>* counter = from_client ? counters.received : counters.sent;
    for (;;) {
        std::error_code ec;
        std::size_t n = co_await from->read_some(buffer, ec);
        if (ec) {
            if (ec == asio::error::eof) {
                // Half-close: the other side learns of the end, the other direction goes on.
                std::error_code ignored;
                co_await to->shutdown_send(ignored);
                if (ignored && !state->failed) state->close_both("half-close failed: " + ignored.message());
            } else if (!state->failed) {
                state->close_both(is_disconnect(ec) ? "closed" : ec.message());
            }
            break;
        }
        ++state->progress;
        co_await to->write_all(ByteView(buffer.data(), n), ec);
        if (ec) {
            if (!state->failed) state->close_both(is_disconnect(ec) ? "closed" : ec.message());
            break;
        }
        ++state->progress;
        *moved += n;
        if (counter != nullptr) counter->fetch_add(n, std::memory_order_relaxed);
        if (n == buffer.size() && buffer.size() < large_buffer) buffer.resize(large_buffer);
    }
    ++state->progress;  // the quiet period after a half-close counts from the close
    if (--state->running == 0) {
        state->done.cancel();
        state->watchdog.cancel();
    }
}

asio::awaitable<void> watch_idle(std::shared_ptr<RelayState> state, std::chrono::milliseconds idle,
                                 std::chrono::milliseconds half_closed_idle) {
    half_closed_idle = std::min(half_closed_idle, idle);
    auto period = std::max<std::chrono::milliseconds>(half_closed_idle / 4, std::chrono::milliseconds(250));
    period = std::min(period, half_closed_idle);
    long quiet_ticks = 0;
    std::uint64_t seen = state->progress;
    while (state->running > 0) {
        auto limit = state->running < 2 ? half_closed_idle : idle;
        auto ticks_allowed = std::max<long>(1, static_cast<long>(limit / period));
        state->watchdog.expires_after(period);
        std::error_code ec;
        co_await state->watchdog.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (state->running == 0) break;
        if (state->progress != seen) {
            seen = state->progress;
            quiet_ticks = 0;
            continue;
        }
        if (++quiet_ticks >= ticks_allowed) {
            state->idle_fired = true;
            state->close_both("idle timeout");
            break;
        }
    }
}

}  // namespace

asio::awaitable<RelayResult> relay(std::shared_ptr<net::Stream> client, std::shared_ptr<net::Stream> backend,
                                   RelayOptions options, RelayCounters counters) {
    auto executor = co_await asio::this_coro::executor;
    auto state = std::make_shared<RelayState>(executor);
    state->client = std::move(client);
    state->backend = std::move(backend);
    state->done.expires_at(std::chrono::steady_clock::time_point::max());
    RelayResult result;
    asio::co_spawn(executor, watch_idle(state, options.idle, options.half_closed_idle), asio::detached);
    asio::co_spawn(executor, copy(state, true, counters, &result.client_to_backend), asio::detached);
    co_await copy(state, false, counters, &result.backend_to_client);
    while (state->running > 0) {
        std::error_code ec;
        co_await state->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    state->watchdog.cancel();
    result.ended = state->ended.empty() ? "closed" : state->ended;
    co_return result;
}

}  // namespace dstack::applets::gateway
