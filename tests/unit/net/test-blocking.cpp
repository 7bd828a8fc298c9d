// One-shot commands on the async net layer, and the system CA bundle they use for https.
#include <doctest/doctest.h>

#include <stdexcept>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "dstack/net/blocking.hpp"
#include "dstack/net/ca-bundle.hpp"

using namespace dstack;

namespace {

asio::awaitable<Result<int>> after_a_timer(int value) {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::use_awaitable);
    co_return value;
}

asio::awaitable<Result<int>> failing() { co_return make_error("no answer"); }

asio::awaitable<Result<int>> throwing() {
    throw std::runtime_error("boom");
    co_return 0;
}

}  // namespace

TEST_CASE("net blocking: a coroutine runs to completion and its result, error or exception comes back") {
    auto value = net::run_blocking(after_a_timer(7), "waiting");
    REQUIRE(value);
    CHECK(*value == 7);
    auto error = net::run_blocking(failing(), "asking");
    REQUIRE_FALSE(error);
    CHECK(error.error().message == "no answer");
    auto thrown = net::run_blocking(throwing(), "fetching collateral");
    REQUIRE_FALSE(thrown);
    CHECK(thrown.error().message == "fetching collateral failed: boom");
}

TEST_CASE("net ca bundle: only certificates that parse are kept; the system bundle is there") {
    std::string junk = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
    CHECK(net::usable_certificates(junk).empty());
    CHECK(net::usable_certificates("").empty());
    const auto& bundle = net::system_ca_bundle();
    REQUIRE_MESSAGE(bundle, "this machine has no CA bundle: install ca-certificates");
    CHECK(bundle->find("-----BEGIN CERTIFICATE-----") != std::string::npos);
    CHECK(net::usable_certificates(*bundle) == *bundle);
}
