#include <doctest/doctest.h>

#include <memory>

#include "dstack/base/result.hpp"

using namespace dstack;

namespace {
Result<int> parse_positive(int v) {
    if (v <= 0) return make_error("{} is not positive", v);
    return v;
}
Result<int> doubled(int v) {
    DSTACK_TRY(int x, parse_positive(v));
    return x * 2;
}
Result<void> check(int v) {
    DSTACK_CHECK(parse_positive(v));
    return {};
}
}  // namespace

TEST_CASE("Result carries values and errors") {
    CHECK(*doubled(21) == 42);
    auto e = doubled(-1);
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().message == "-1 is not positive");
    CHECK(e.error().context("reading config").message == "reading config: -1 is not positive");
    CHECK(check(1).ok());
    CHECK_FALSE(check(0).ok());
    CHECK(parse_positive(0).value_or(7) == 7);

    Result<std::unique_ptr<int>> moved = std::make_unique<int>(5);
    std::unique_ptr<int> p = std::move(moved).value();
    CHECK(*p == 5);
}
