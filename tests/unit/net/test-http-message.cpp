#include <doctest/doctest.h>

#include "dstack/net/http.hpp"

using namespace dstack::net::http;

TEST_CASE("net http headers: case-insensitive look-up keeps order") {
    Headers h;
    h.add("Content-Type", "application/json");
    h.add("X-A", "1");
    h.add("x-a", "2");
    CHECK(*h.get("content-type") == "application/json");
    CHECK(*h.get("X-A") == "1");
    CHECK(h.get_all("X-a").size() == 2);
    CHECK_FALSE(h.get("missing"));
    h.set("X-A", "3");
    CHECK(h.get_all("x-a").size() == 1);
    CHECK(*h.get("x-a") == "3");
    CHECK(h.begin()->name == "Content-Type");
    h.remove("CONTENT-TYPE");
    CHECK(h.size() == 1);

    Headers conn;
    conn.add("Connection", "Keep-Alive, Upgrade");
    conn.add("Connection", " close ");
    CHECK(conn.has_token("connection", "upgrade"));
    CHECK(conn.has_token("connection", "close"));
    CHECK_FALSE(conn.has_token("connection", "keep"));
}

TEST_CASE("net http request keep-alive rules") {
    Request r;
    CHECK(r.keep_alive());
    r.headers.add("Connection", "close");
    CHECK_FALSE(r.keep_alive());
    Request old;
    old.version_minor = 0;
    CHECK_FALSE(old.keep_alive());
    old.headers.add("Connection", "keep-alive");
    CHECK(old.keep_alive());
}

TEST_CASE("net http json escaping keeps byte length equal to JS string length") {
    CHECK(json_escape("plain") == "plain");
    CHECK(json_escape("a\"b\\c\n\t\x01") == "a\\\"b\\\\c\\n\\t\\u0001");
    CHECK(json_escape("caf\xc3\xa9") == "caf\\u00e9");
    CHECK(json_escape("\xe2\x82\xac") == "\\u20ac");
    CHECK(json_escape("\xf0\x9f\x98\x80") == "\\ud83d\\ude00");
    // Invalid UTF-8 (lone continuation, overlong, surrogate, truncated) becomes U+FFFD.
    CHECK(json_escape("\x80") == "\\ufffd");
    CHECK(json_escape("\xc0\xaf") == "\\ufffd\\ufffd");
    CHECK(json_escape("\xed\xa0\x80") == "\\ufffd\\ufffd\\ufffd");
    CHECK(json_escape("\xe2\x82") == "\\ufffd\\ufffd");
    auto r = Response::json_error(400, "bad \"thing\"");
    CHECK(r.status == 400);
    CHECK(r.body == "{\"error\":\"bad \\\"thing\\\"\"}");
    CHECK(*r.headers.get("content-type") == "application/json");
}

TEST_CASE("net http percent-decoding and query strings") {
    CHECK(*percent_decode("a%20b%2Fc", false) == "a b/c");
    CHECK(*percent_decode("a+b", false) == "a+b");
    CHECK(*percent_decode("a+b", true) == "a b");
    CHECK(*percent_decode("%e2%82%ac", true) == "\xe2\x82\xac");
    CHECK_FALSE(percent_decode("%", true).ok());
    CHECK_FALSE(percent_decode("%4", true).ok());
    CHECK_FALSE(percent_decode("%zz", true).ok());

    auto q = parse_query("json&report_data=0x00ff&path=%2Fa+b&&empty=&x=1=2");
    REQUIRE(q.ok());
    REQUIRE(q->size() == 5);
    CHECK((*q)[0].key == "json");
    CHECK((*q)[0].value.empty());
    CHECK((*q)[1].value == "0x00ff");
    CHECK((*q)[2].value == "/a b");
    CHECK((*q)[3].key == "empty");
    CHECK((*q)[4].value == "1=2");
    CHECK(parse_query("")->empty());
    auto bad = parse_query("a=%G0");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message.find("'a'") != std::string::npos);
}

TEST_CASE("net http reason phrases") {
    CHECK(reason_phrase(200) == "OK");
    CHECK(reason_phrase(413) == "Content Too Large");
    CHECK(reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(reason_phrase(799) == "Unknown");
}
