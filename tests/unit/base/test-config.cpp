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
