#include <doctest/doctest.h>

#include "dstack/base/config.hpp"
#include "dstack/base/log.hpp"

using namespace dstack;

TEST_CASE("TOML config look-ups and unknown keys") {
    auto config = Config::parse(R"(
[core]
admin_token = "x"
[core.rpc]
address = "0.0.0.0"
port = 8000
tls = true
hosts = ["a", "b"]
typo_key = 1
[plugins.anything]
value = 3
)", "kms.toml");
    REQUIRE(config.ok());
    CHECK(**config->get_string("core.rpc.address") == "0.0.0.0");
    CHECK(**config->get_int("core.rpc.port") == 8000);
    CHECK(**config->get_bool("core.rpc.tls") == true);
    CHECK((**config->get_string_array("core.rpc.hosts")).size() == 2);
    CHECK_FALSE(config->get_string("core.rpc.missing")->has_value());
    auto wrong = config->get_string("core.rpc.port");
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.error().message == "kms.toml: key 'core.rpc.port' must be a string, found a integer");

    auto saved = log::settings();
    log::configure({log::Level::off});
    auto unknown = config->warn_unknown_keys(
        {"core.admin_token", "core.rpc.address", "core.rpc.port", "core.rpc.tls", "core.rpc.hosts", "plugins.*"});
    log::configure(saved);
    REQUIRE(unknown.size() == 1);
    CHECK(unknown[0] == "core.rpc.typo_key");
}

TEST_CASE("TOML syntax errors name the place") {
    auto bad = Config::parse("[core\nx = 1\n", "bad.toml");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message.starts_with("bad.toml:1:"));
    CHECK_FALSE(Config::load("/nonexistent/kms.toml").ok());
}

TEST_CASE("TOML values as command-line words") {
    auto config = Config::parse(R"(
port = 8080
address = "127.0.0.1"
debug = false
statuses = ["OutOfDate", "SWHardeningNeeded"]
ratio = 0.5
[table]
x = 1
)");
    REQUIRE(config);
    CHECK(**config->get_words("port") == std::vector<std::string>{"8080"});
    CHECK(**config->get_words("address") == std::vector<std::string>{"127.0.0.1"});
    CHECK(**config->get_words("debug") == std::vector<std::string>{"false"});
    CHECK(**config->get_words("statuses") == std::vector<std::string>{"OutOfDate", "SWHardeningNeeded"});
    CHECK_FALSE(*config->get_words("missing"));
    auto ratio = config->get_words("ratio");
    REQUIRE_FALSE(ratio);
    CHECK(ratio.error().message == "<string>: key 'ratio' must be a string, integer, boolean or an array of those, found a float");
    CHECK_FALSE(config->get_words("table"));
}

TEST_CASE("TOML: a header opening with three brackets is refused, not passed to toml++ (which aborts on it)") {
    for (std::string_view text : {"[[[", "[[[a]]]", "[[a]]\n[[[", " [ [ [x", "a = 1\n\t[[[b]]]\n"}) {
        auto config = Config::parse(text, "c.toml");
        REQUIRE_FALSE(config);
        CHECK(config.error().message.find("may not open with '[[['") != std::string::npos);
    }
    CHECK(Config::parse("a = [[1], [2]]\n[[t]]\nx = 1\n"));
    auto nested = Config::parse("a = [[[1]]]\n");
    CHECK(nested);  // inside a value on the same line: fine
}

TEST_CASE("TOML: input toml++ asserts on is a clean error (its asserts are off, NDEBUG's assume too)") {
    for (std::string_view text : {"[}", "[a.}]", "a.} = 1", "x = { } = 1 }", "[ \"a\" . ]"}) {
        auto config = Config::parse(text, "c.toml");
        CHECK_FALSE(config);
    }
}

TEST_CASE("TOML: config text is ASCII (toml++ reaches undefined behaviour on some non-ASCII input)") {
    auto found = Config::parse("a = 1\n\xc6\xa7+Z", "c.toml");  // what the fuzzer found
    REQUIRE_FALSE(found);
    CHECK(found.error().message == "c.toml:2: byte 0xc6 is not ASCII (write other characters as \\uXXXX escapes in a string)");
    CHECK_FALSE(Config::parse("name = \"caf\xc3\xa9\"\n"));
    auto escaped = Config::parse("name = \"caf\\u00e9\"\n");
    REQUIRE(escaped);
    CHECK(**escaped->get_string("name") == "caf\xc3\xa9");
    CHECK_FALSE(Config::parse("a = 1\x01\n"));
    CHECK(Config::parse("a = 1\r\n\tb = 2\n"));
}
