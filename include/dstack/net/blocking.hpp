// Runs one coroutine to completion on a private io_context: how a one-shot command (fetch this,
// then exit) uses the asynchronous net layer. An exception the coroutine throws becomes an error
// naming `what`; nothing escapes.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "dstack/base/result.hpp"

namespace dstack::net {

namespace detail {
template <typename T>
asio::awaitable<void> run_into(asio::awaitable<Result<T>> task, std::optional<Result<T>>* out) {
    *out = co_await std::move(task);
}
}  // namespace detail

template <typename T>
Result<T> run_blocking(asio::awaitable<Result<T>> task, std::string_view what) {
    asio::io_context context;
    std::optional<Result<T>> result;
    std::string failure = "it did not complete";
    asio::co_spawn(context, detail::run_into<T>(std::move(task), &result), [&failure](std::exception_ptr error) {
        if (!error) return;
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            failure = e.what();
        } catch (...) {
            failure = "unknown exception";
        }
    });
    context.run();
    if (!result) return make_error("{} failed: {}", what, failure);
    return std::move(*result);
}

}  // namespace dstack::net
