#include <doctest/doctest.h>

#include <string>

#include "dstack/base/json-nesting.hpp"

using dstack::json_nesting_within;

TEST_CASE("json_nesting_within counts arrays and objects, not brackets inside strings") {
    CHECK(json_nesting_within(R"({"a":[1,{"b":2}]})", 3));
    CHECK_FALSE(json_nesting_within(R"({"a":[1,{"b":2}]})", 2));
    CHECK(json_nesting_within(R"({"a":"[[[[{{{{"})", 1));
    CHECK(json_nesting_within(R"({"a":"\"[[[["})", 1));  // an escaped quote does not end the string
    CHECK_FALSE(json_nesting_within(std::string(100000, '['), 64));
}
