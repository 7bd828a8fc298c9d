// Helpers for net tests: run coroutines on a real io_context, temporary directories.
#pragma once

#include <doctest/doctest.h>

#include <stdlib.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "dstack/net/stream.hpp"

namespace dstack::net::test {

// Runs `task` (and whatever else was spawned on `io`) until the task finishes or the time
// limit passes; a hung test fails instead of hanging the suite.
template <typename T>
T run(asio::io_context& io, asio::awaitable<T> task, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::optional<T> result;
    std::exception_ptr failure;
    bool done = false;
    // Results need not be default-constructible (Result<T> is not), so the value is stored here.
    auto store = [](asio::awaitable<T> inner, std::optional<T>& out) -> asio::awaitable<void> {
        out.emplace(co_await std::move(inner));
    };
    asio::co_spawn(io, store(std::move(task), result), [&](std::exception_ptr e) {
        failure = e;
        done = true;
    });
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) {
        io.run_one_for(std::chrono::milliseconds(50));
        if (io.stopped()) io.restart();
    }
    REQUIRE_MESSAGE(done, "coroutine did not finish in time");
    if (failure) std::rethrow_exception(failure);
    REQUIRE(result.has_value());
    return std::move(*result);
}

inline void run(asio::io_context& io, asio::awaitable<void> task, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    run(io, [](asio::awaitable<void> inner) -> asio::awaitable<int> { co_await std::move(inner); co_return 0; }(std::move(task)), limit);
}

inline std::filesystem::path make_temp_dir() {
    char pattern[] = "/tmp/dstack-net-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    return pattern;
}

struct TempDir {
    std::filesystem::path path = make_temp_dir();
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// Reads until end of stream (or an error, returned through ec).
inline asio::awaitable<std::string> read_to_end(Stream& stream, std::error_code& ec) {
    std::string out;
    std::uint8_t buffer[4096];
    for (;;) {
        std::size_t n = co_await stream.read_some(buffer, ec);
        out.append(reinterpret_cast<const char*>(buffer), n);
        if (ec) {
            if (ec == asio::error::eof) ec.clear();
            co_return out;
        }
    }
}

// Echoes everything back, then ends its sending side once the peer has ended its own.
inline asio::awaitable<void> echo(StreamPtr stream) {
    std::uint8_t buffer[4096];
    for (;;) {
        std::error_code ec;
        std::size_t n = co_await stream->read_some(buffer, ec);
        if (n > 0) {
            std::error_code write_error;
            co_await stream->write_all(ByteView(buffer, n), write_error);
            if (write_error) break;
        }
        if (ec) break;
    }
    std::error_code ignored;
    co_await stream->shutdown_send(ignored);
}

}  // namespace dstack::net::test
