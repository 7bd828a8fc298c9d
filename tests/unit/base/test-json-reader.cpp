#include <doctest/doctest.h>

#include <string>

#include "dstack/base/json-reader.hpp"

using namespace dstack;
using dstack::json::read_json;
using dstack::json::ReadLimits;

namespace {

constexpr ReadLimits limits{1024 * 1024, 8};

std::string error_of(std::string_view text, ReadLimits with = limits) {
    auto document = read_json(text, with);
    REQUIRE_FALSE(document.ok());
    return document.error().message;
}

json::Object root_object(const json::Document& document) {
    auto object = document.root().object();
    REQUIRE(object.ok());
    return *object;
}

}  // namespace

TEST_CASE("json reader: one value, strictly") {
    auto document = read_json(" {\"a\":[1,{\"b\":\"c\"}],\"n\":null} \n", limits);
    REQUIRE_MESSAGE(document.ok(), (document.ok() ? "" : document.error().message));
    CHECK(document->root().is_object());
    CHECK(read_json("7", limits).ok());
    CHECK(read_json("\"s\"", limits).ok());

    CHECK(error_of("") == "not valid JSON: The document is empty. (at byte 0)");
    CHECK(error_of("{\"a\":1").rfind("not valid JSON: ", 0) == 0);
    CHECK(error_of("{\"a\":1} x") == "not valid JSON: The document root must not be followed by other values. (at byte 8)");
    CHECK(error_of("{} {}").rfind("not valid JSON: ", 0) == 0);
    // A NUL byte ends RapidJSON's view of the text; what follows it is still trailing data.
    CHECK(error_of(std::string("{}\0{}", 5)) == "not valid JSON: unexpected data after the value (at byte 2)");
    CHECK(error_of(std::string("{}\0", 3)) == "not valid JSON: unexpected data after the value (at byte 2)");
    CHECK(error_of("\xef\xbb\xbf{}").rfind("not valid JSON: ", 0) == 0);  // no byte-order mark
    CHECK(error_of("[NaN]").rfind("not valid JSON: ", 0) == 0);
    CHECK(error_of("{'a':1}").rfind("not valid JSON: ", 0) == 0);
    CHECK(error_of("[\"a\nb\"]").rfind("not valid JSON: ", 0) == 0);  // raw control character in a string
}

TEST_CASE("json reader: invalid UTF-8 is refused, escapes are decoded") {
    CHECK(error_of("[\"\xff\"]") == "not valid JSON: Invalid encoding in string. (at byte 2)");
    CHECK(error_of("[\"\xc0\xaf\"]").rfind("not valid JSON: Invalid encoding", 0) == 0);      // overlong
    CHECK(error_of("[\"\xed\xa0\x80\"]").rfind("not valid JSON: Invalid encoding", 0) == 0);  // a surrogate
    CHECK(error_of("[\"\\ud800\"]").rfind("not valid JSON: ", 0) == 0);                      // a lone surrogate escape
    CHECK(error_of("{\"\xfe\":1}").rfind("not valid JSON: Invalid encoding", 0) == 0);        // keys too
    auto document = read_json("[\"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00\"]", limits);
    REQUIRE(document.ok());
    auto items = document->root().array(1);
    REQUIRE(items.ok());
    CHECK(*(*items)[0].string() == "caf\xc3\xa9 \xc3\xa9 \xf0\x9f\x98\x80");
}

TEST_CASE("json reader: size and depth limits, the depth counted before anything recursive") {
    CHECK(read_json(std::string(100, ' ') + "1", {101, 8}).ok());
    CHECK(error_of(std::string(101, ' ') + "1", {101, 8}) == "JSON text of 102 bytes exceeds the 101-byte limit");

    CHECK(read_json("[[[{\"a\":[[[[1]]]]}]]]", limits).ok());  // exactly 8
    CHECK(error_of("[[[{\"a\":[[[[[1]]]]]}]]]") == "JSON nests deeper than 8 levels (at byte 12)");
    CHECK(read_json("5", {10, 0}).ok());
    CHECK(error_of("[]", {10, 0}) == "JSON nests deeper than 0 levels (at byte 0)");
    // Brackets inside strings do not nest.
    CHECK(read_json(R"({"a":"[[[[[[[[[[{{{{{{{{{{","b":"\"[[[[[[[[[["})", limits).ok());
    // A hostile document is refused at its first too-deep bracket, whatever follows.
    std::string deep(1000000, '[');
    CHECK(error_of(deep, {deep.size(), 64}) == "JSON nests deeper than 64 levels (at byte 64)");
    CHECK(error_of(deep + std::string(1000000, ']'), {2 * deep.size(), 64}) == "JSON nests deeper than 64 levels (at byte 64)");
    // The limit asked for is capped where the duplicate-key check's recursion stays bounded.
    CHECK(error_of(deep, {deep.size(), 1000000}) == fmt::format("JSON nests deeper than {} levels (at byte {})",
                                                                json::max_read_depth, json::max_read_depth));
}

TEST_CASE("json reader: duplicate keys are refused at any depth, named with their path") {
    CHECK(error_of(R"({"a":1,"b":2,"a":3})") == "$: duplicate key 'a'");
    CHECK(error_of(R"({"a":1,"a":1})") == "$: duplicate key 'a'");  // even with equal values
    CHECK(error_of(R"({"x":[0,{"tcb":{"pcesvn":1,"pcesvn":2}}]})") == "$.x[1].tcb: duplicate key 'pcesvn'");
    CHECK(error_of(R"([[{"k":{},"k":[]}]])") == "$[0][0]: duplicate key 'k'");
    // Keys are compared decoded: an escape does not make a second key.
    CHECK(error_of(R"({"signature":"00","s\u0069gnature":"01"})") == "$: duplicate key 'signature'");
    CHECK(error_of(R"({"odd key":{"a":1,"a":2}})") == "$[\"odd key\"]: duplicate key 'a'");
    CHECK(error_of("{\"\":1,\"\":2}") == "$: duplicate key ''");
    CHECK(error_of(R"({"a\u0000":1,"a\u0000":2})") == "$: duplicate key 'a\\x00'");
    // Distinct keys that differ only after a NUL are distinct.
    CHECK(read_json(R"({"a\u0000b":1,"a\u0000c":2,"a":3})", limits).ok());
    // Same keys in different objects are fine.
    CHECK(read_json(R"([{"a":1},{"a":2},{"b":{"a":3}}])", limits).ok());
    // Large objects take another path through the check than small ones.
    std::string large = "{";
    for (int i = 0; i < 40; ++i) large += fmt::format("\"k{}\":{},", i, i);
    CHECK(read_json(large.substr(0, large.size() - 1) + "}", limits).ok());
    CHECK(error_of(large + "\"k17\":0}") == "$: duplicate key 'k17'");
    CHECK(error_of("{\"k\":[" + large + "\"k39\":0}]}") == "$.k[0]: duplicate key 'k39'");
    std::string long_key(200, 'k');
    CHECK(error_of("{\"" + long_key + "\":1,\"" + long_key + "\":2}") == "$: duplicate key '" + std::string(64, 'k') + "...'");
}

TEST_CASE("json reader: typed access names the path") {
    auto document = read_json(
        R"({"event_log":[{},{},{},{"digest":5,"imr":3,"big":256,"neg":-1,"frac":1.5,"huge":1e30,"flag":true,)"
        R"("hex":"0xABcd","bad_hex":"abc","nothing":null,"odd key":"v"}],"name":"n"})",
        limits);
    REQUIRE_MESSAGE(document.ok(), (document.ok() ? "" : document.error().message));
    auto root = root_object(*document);
    auto log = root.array("event_log", 10);
    REQUIRE(log.ok());
    CHECK(log->size() == 4);
    auto entry_value = (*log)[3];
    CHECK(entry_value.path() == "$.event_log[3]");
    auto entry = entry_value.object();
    REQUIRE(entry.ok());

    CHECK(entry->string("digest").error().message == "$.event_log[3].digest: expected a string, got 5");
    CHECK(entry->string("missing").error().message == "$.event_log[3]: missing field 'missing'");
    CHECK(entry->string("nothing").error().message == "$.event_log[3].nothing: expected a string, got null");
    CHECK(*entry->string("odd key") == "v");
    CHECK(entry->object("flag").error().message == "$.event_log[3].flag: expected an object, got true");
    CHECK(entry->array("imr", 1).error().message == "$.event_log[3].imr: expected an array, got 3");
    CHECK(root.array("event_log", 3).error().message == "$.event_log: 4 entries exceed the limit of 3");
    CHECK(entry->boolean("imr").error().message == "$.event_log[3].imr: expected a boolean, got 3");
    CHECK(*entry->boolean("flag"));
    CHECK(root.string("event_log").error().message == "$.event_log: expected a string, got an array");
    CHECK(root.boolean("name").error().message == "$.name: expected a boolean, got a string");
    CHECK(document->root().string().error().message == "$: expected a string, got an object");

    SUBCASE("integers with ranges") {
        CHECK(*entry->uint_as<std::uint8_t>("imr") == 3);
        CHECK(entry->uint_as<std::uint8_t>("big").error().message == "$.event_log[3].big: 256 is out of range (at most 255)");
        CHECK(*entry->uint_as<std::uint16_t>("big") == 256);
        CHECK(entry->uint_as<std::uint32_t>("neg").error().message ==
              "$.event_log[3].neg: expected a non-negative integer, got -1");
        CHECK(entry->uint_as<std::uint64_t>("frac").error().message ==
              "$.event_log[3].frac: expected a non-negative integer, got a number that is not a 64-bit integer");
        CHECK(entry->uint_as<std::uint64_t>("huge").error().message ==
              "$.event_log[3].huge: expected a non-negative integer, got a number that is not a 64-bit integer");
        CHECK(entry->uint_as<std::uint64_t>("hex").error().message ==
              "$.event_log[3].hex: expected a non-negative integer, got a string");
        auto big = entry->required("big");
        REQUIRE(big.ok());
        CHECK(*big->uint(256) == 256);
        CHECK(big->uint(255).error().message == "$.event_log[3].big: 256 is out of range (at most 255)");
        auto edge = read_json("[18446744073709551615,18446744073709551616,0]", limits);
        REQUIRE(edge.ok());
        auto items = edge->root().array(3);
        REQUIRE(items.ok());
        CHECK(*(*items)[0].uint() == 18446744073709551615u);
        CHECK((*items)[1].uint().error().message == "$[1]: expected a non-negative integer, got a number that is not a 64-bit integer");
        CHECK(*(*items)[2].uint(0) == 0);
    }
    SUBCASE("hex strings") {
        CHECK(*entry->hex("hex") == Bytes{0xab, 0xcd});
        CHECK(*entry->hex("hex", 2) == Bytes{0xab, 0xcd});
        CHECK(entry->hex("hex", 3).error().message == "$.event_log[3].hex: expected 3 bytes, got 2");
        CHECK(entry->hex("bad_hex").error().message.rfind("$.event_log[3].bad_hex: ", 0) == 0);
        CHECK(entry->hex("digest").error().message == "$.event_log[3].digest: expected a hex string, got 5");
    }
    SUBCASE("null means absent where a field is optional") {
        CHECK_FALSE(entry->optional("nothing").has_value());
        CHECK_FALSE(entry->optional("missing").has_value());
        auto imr = entry->optional("imr");
        REQUIRE(imr.has_value());
        CHECK(imr->path() == "$.event_log[3].imr");
        CHECK(entry->required("nothing").ok());  // present, and then the wrong type for anything but null
        CHECK(entry->required("nothing")->is_null());
    }
    SUBCASE("paths of keys that are not identifiers") {
        CHECK(entry->member_path("odd key") == "$.event_log[3][\"odd key\"]");
        CHECK(entry->member_path("9lives") == "$.event_log[3][\"9lives\"]");
        CHECK(entry->member_path("a\"b\\c") == "$.event_log[3][\"a\\\"b\\\\c\"]");
        CHECK(entry->member_path("new\nline") == "$.event_log[3][\"new\\x0aline\"]");
        CHECK(entry->member_path("_ok9") == "$.event_log[3]._ok9");
    }
}
