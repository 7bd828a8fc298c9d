// Result<T>: a value or an Error whose message a user can act on.
// Parsers and everything fed by the network return this instead of throwing.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace dstack {

struct Error {
    std::string message;

    // Prepends context, giving the "outer: inner" chains that upstream's errors use.
    Error context(std::string_view outer) const& { return {fmt::format("{}: {}", outer, message)}; }
    Error context(std::string_view outer) && {
        message = fmt::format("{}: {}", outer, message);
        return std::move(*this);
    }
};

template <typename... Args>
Error make_error(fmt::format_string<Args...> format, Args&&... args) {
    return Error{fmt::format(format, std::forward<Args>(args)...)};
}

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { assert(ok()); return std::get<0>(state_); }
    const T& value() const& { assert(ok()); return std::get<0>(state_); }
    T&& value() && { assert(ok()); return std::get<0>(std::move(state_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const { assert(!ok()); return std::get<1>(state_); }
    Error take_error() && { assert(!ok()); return std::get<1>(std::move(state_)); }

    T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

private:
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Error& error() const { assert(failed_); return error_; }
    Error take_error() && { assert(failed_); return std::move(error_); }

private:
    Error error_;
    bool failed_ = false;
};

}  // namespace dstack

// Propagates an error to the caller: DSTACK_TRY(auto x, parse(...));
#define DSTACK_CONCAT_INNER(a, b) a##b
#define DSTACK_CONCAT(a, b) DSTACK_CONCAT_INNER(a, b)
#define DSTACK_TRY(decl, expr) DSTACK_TRY_IMPL(decl, expr, DSTACK_CONCAT(dstack_try_, __LINE__))
#define DSTACK_TRY_IMPL(decl, expr, tmp)          \
    auto tmp = (expr);                            \
    if (!tmp) return std::move(tmp).take_error(); \
    decl = std::move(tmp).value()
// For Result<void>: DSTACK_CHECK(write_file(...));
#define DSTACK_CHECK(expr) DSTACK_CHECK_IMPL(expr, DSTACK_CONCAT(dstack_check_, __LINE__))
#define DSTACK_CHECK_IMPL(expr, tmp) \
    if (auto tmp = (expr); !tmp) return std::move(tmp).take_error()
