// The gateway's routing grammar: upstream's table (spec gateway.md §3.5, test_parse_destination
// and the 'g' rows of its docs), the refusals, server-name splitting and TXT app addresses (§3.6).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "dstack/app/gateway-route.hpp"

using namespace dstack;
using namespace dstack::app;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("gateway route: upstream's label table") {
    struct Row {
        std::string label, id;
        std::uint16_t port;
        bool passthrough, h2;
    };
    for (const Row& row : std::vector<Row>{
             {"myapp", "myapp", 80, false, false},
             {"myapps", "myapps", 80, false, false},  // no dash: the 's' belongs to the id
             {"myapp-8080", "myapp", 8080, false, false},
             {"myapp-s", "myapp", 443, true, false},
             {"myapp-443s", "myapp", 443, true, false},
             {"myapp-8443s", "myapp", 8443, true, false},
             {"myapp-g", "myapp", 80, false, true},
             {"myapp-50051g", "myapp", 50051, false, true},
             {"3327603e03f5bd1f830812ca4a789277fc31f577-1s", "3327603e03f5bd1f830812ca4a789277fc31f577", 1, true, false},
             {"a-65535", "a", 65535, false, false},
             {"a-080", "a", 80, false, false},  // leading zeros, as upstream's u16 parse takes them
         }) {
        CAPTURE(row.label);
        auto target = parse_gateway_label(row.label);
        REQUIRE_MESSAGE(target.ok(), target.error().message);
        CHECK(target->id == row.id);
        CHECK(target->port == row.port);
        CHECK(target->tls_passthrough == row.passthrough);
        CHECK(target->h2 == row.h2);
    }
}

TEST_CASE("gateway route: refused labels say which label and why") {
    for (auto [label, reason] : std::vector<std::pair<std::string, std::string>>{
             {"my-app-8080", "more than one '-'"},
             {"a-b-c", "more than one '-'"},
             {"", "id before '-' is empty"},
             {"-8080", "id before '-' is empty"},
             {"-s", "id before '-' is empty"},
             {"myapp-sg", "cannot be combined"},
             {"myapp-443sg", "cannot be combined"},
             {"myapp-gs", "\"g\" is not a port"},
             {"myapp-0", "\"0\" is not a port from 1 to 65535"},
             {"myapp-0s", "\"0\" is not a port"},
             {"myapp-00", "\"00\" is not a port"},
             {"myapp-65536", "\"65536\" is not a port"},
             {"myapp-99999999999999999999", "is not a port"},
             {"myapp-+80", "\"+80\" is not a port"},
             {"myapp-80x", "\"80x\" is not a port"},
             {"myapp-x", "\"x\" is not a port"},
             {"myapp-S", "\"S\" is not a port"},
             {"myapp-", "nothing after '-'"},
         }) {
        CAPTURE(label);
        auto target = parse_gateway_label(label);
        REQUIRE_FALSE(target.ok());
        const std::string& message = target.error().message;
        CHECK_MESSAGE(contains(message, reason), message);
        CHECK_MESSAGE(contains(message, "server name label \"" + label + "\""), message);
    }
}

TEST_CASE("gateway route: a server name splits at its first dot") {
    auto split = split_server_name("myapp-8080.gw.example.com");
    REQUIRE(split.ok());
    CHECK(split->first_label == "myapp-8080");
    CHECK(split->parent == "gw.example.com");
    auto two = split_server_name("a.b");
    REQUIRE(two.ok());
    CHECK(two->first_label == "a");
    CHECK(two->parent == "b");
    for (std::string name : {"localhost", "", ".example.com", "a."}) {
        CAPTURE(name);
        auto refused = split_server_name(name);
        REQUIRE_FALSE(refused.ok());
        CHECK_MESSAGE(refused.error().message.rfind("invalid sni \"" + name + "\"", 0) == 0, refused.error().message);
    }
}

TEST_CASE("gateway route: a custom domain's TXT app address") {
    auto target = parse_app_address("3327603e03f5bd1f830812ca4a789277fc31f577:555");
    REQUIRE_MESSAGE(target.ok(), target.error().message);
    CHECK(target->id == "3327603e03f5bd1f830812ca4a789277fc31f577");
    CHECK(target->port == 555);
    CHECK(target->tls_passthrough);
    CHECK_FALSE(target->h2);
    for (auto [txt, reason] : std::vector<std::pair<std::string, std::string>>{
             {"3327603e03f5bd1f830812ca4a789277fc31f577", "expected <app_id>:<port>"},
             {":555", "app id before ':' is empty"},
             {"abc:", "\"\" is not a port"},
             {"abc:0", "\"0\" is not a port from 1 to 65535"},
             {"abc:65536", "\"65536\" is not a port"},
             {"abc:555 ", "\"555 \" is not a port"},
             {"abc:5:5", "\"5:5\" is not a port"},
             {"ab c:555", "a character other than"},
             {"ab.c:555", "a character other than"},
         }) {
        CAPTURE(txt);
        auto refused = parse_app_address(txt);
        REQUIRE_FALSE(refused.ok());
        CHECK_MESSAGE(contains(refused.error().message, reason), refused.error().message);
        CHECK(contains(refused.error().message, "app address TXT record"));
    }
}
