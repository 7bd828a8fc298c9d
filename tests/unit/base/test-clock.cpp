#include <doctest/doctest.h>

#include "dstack/base/clock.hpp"

using namespace dstack;

TEST_CASE("RFC 3339 timestamps") {
    CHECK(format_rfc3339(0) == "1970-01-01T00:00:00Z");
    CHECK(format_rfc3339(1752919234) == "2025-07-19T10:00:34Z");
    CHECK(*parse_rfc3339("2025-07-19T10:00:34Z") == 1752919234);
    CHECK(*parse_rfc3339("2025-07-19T10:00:34.123Z") == 1752919234);
    CHECK(*parse_rfc3339("2025-07-19T12:00:34+02:00") == 1752919234);
    CHECK(*parse_rfc3339("2000-02-29T00:00:00Z") == 951782400);
    CHECK_FALSE(parse_rfc3339("2025-02-29T00:00:00Z").ok());
    CHECK_FALSE(parse_rfc3339("2025-04-31T00:00:00Z").ok());
    CHECK_FALSE(parse_rfc3339("2025-07-19 10:00:34").ok());
    CHECK_FALSE(parse_rfc3339("2025-07-19T10:00:34").ok());
    CHECK_FALSE(parse_rfc3339("").ok());
    for (UnixSeconds t : {UnixSeconds{0}, UnixSeconds{951782400}, UnixSeconds{4102444799}})
        CHECK(*parse_rfc3339(format_rfc3339(t)) == t);
}

TEST_CASE("times as people give them: Unix seconds or RFC 3339") {
    CHECK(*parse_time("1752919234") == 1752919234);
    CHECK(*parse_time("0") == 0);
    CHECK(*parse_time("2025-07-19T10:00:34Z") == 1752919234);
    auto bad = parse_time("yesterday");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message == "'yesterday' is neither Unix seconds nor an RFC 3339 time");
    CHECK_FALSE(parse_time(""));
    CHECK_FALSE(parse_time("-5"));
    CHECK_FALSE(parse_time("1234567890123"));  // 13 digits: more than any time we verify at
}
