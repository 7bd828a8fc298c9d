#include <doctest/doctest.h>

#include <string>

#include "dstack/net/http-parser.hpp"

using namespace dstack::net::http;
using Status = RequestParser::Status;

namespace {

// Feeds the whole input at once and returns the final status.
Status feed_all(RequestParser& parser, std::string_view input) {
    parser.feed(input);
    return parser.parse();
}

// Feeds one byte at a time; the result must not depend on how bytes are split.
Status feed_bytewise(RequestParser& parser, std::string_view input) {
    Status status = Status::need_more;
    for (char c : input) {
        parser.feed(std::string_view(&c, 1));
        status = parser.parse();
        if (status != Status::need_more) break;
    }
    return status;
}

int error_status_of(std::string_view input, ParserLimits limits = {}) {
    RequestParser whole(limits);
    auto status = feed_all(whole, input);
    RequestParser split(limits);
    auto split_status = feed_bytewise(split, input);
    CHECK(split_status == status);
    if (status != Status::error) return 0;
    CHECK(split.error().status == whole.error().status);
    return whole.error().status;
}

}  // namespace

TEST_CASE("net http parser: simple GET, whole and byte by byte") {
    std::string input = "GET /prpc/Info?json&x=1 HTTP/1.1\r\nHost: localhost\r\nX-Thing:  spaced value \t\r\n\r\n";
    for (bool bytewise : {false, true}) {
        RequestParser parser;
        auto status = bytewise ? feed_bytewise(parser, input) : feed_all(parser, input);
        REQUIRE(status == Status::complete);
        auto req = parser.take_request();
        CHECK(req.method == "GET");
        CHECK(req.target == "/prpc/Info?json&x=1");
        CHECK(req.path == "/prpc/Info");
        CHECK(req.query == "json&x=1");
        CHECK(req.has_query);
        CHECK(req.version_minor == 1);
        CHECK(req.headers.size() == 2);
        CHECK(*req.headers.get("host") == "localhost");
        CHECK(*req.headers.get("X-THING") == "spaced value");
        CHECK(req.body.empty());
        CHECK(req.keep_alive());
        CHECK(parser.idle());
    }
}

TEST_CASE("net http parser: Content-Length body and pipelining keep leftovers") {
    std::string input =
        "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        "GET /third HTTP/1.0\r\n";
    RequestParser parser;
    REQUIRE(feed_all(parser, input) == Status::complete);
    auto first = parser.take_request();
    CHECK(first.body == "hello");
    CHECK_FALSE(parser.idle());
    REQUIRE(parser.parse() == Status::complete);
    auto second = parser.take_request();
    CHECK(second.body == "abc");
    CHECK(parser.parse() == Status::need_more);
    CHECK(parser.current().method == "GET");
    parser.feed("\r\n");
    REQUIRE(parser.parse() == Status::complete);
    auto third = parser.take_request();
    CHECK(third.path == "/third");
    CHECK(third.version_minor == 0);
    CHECK_FALSE(third.keep_alive());
    CHECK(parser.idle());
}

TEST_CASE("net http parser: chunked bodies with extensions and trailers") {
    std::string input =
        "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;name=value\r\nhello\r\n"
        "6 ; other\r\n world\r\n"
        "A\r\n0123456789\r\n"
        "0\r\nX-Trailer: yes\r\n\r\n"
        "GET / HTTP/1.1\r\n\r\n";
    for (bool bytewise : {false, true}) {
        RequestParser parser;
        auto status = bytewise ? feed_bytewise(parser, input) : feed_all(parser, input);
        REQUIRE(status == Status::complete);
        auto req = parser.take_request();
        CHECK(req.body == "hello world0123456789");
        CHECK_FALSE(req.headers.contains("X-Trailer"));
        if (!bytewise) {
            REQUIRE(parser.parse() == Status::complete);
            CHECK(parser.take_request().path == "/");
        }
    }
    RequestParser lower_case;
    CHECK(feed_all(lower_case, "POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\nff\r\n") == Status::need_more);
    RequestParser upper;
    REQUIRE(feed_all(upper, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1F\r\n"
                            "0123456789abcdef0123456789abcde\r\n0\r\n\r\n") == Status::complete);
    CHECK(upper.take_request().body.size() == 31);
}

TEST_CASE("net http parser: leading blank lines and absolute-form targets") {
    RequestParser parser;
    REQUIRE(feed_all(parser, "\r\n\r\nGET http://example.com:80/a/b?c=d HTTP/1.1\r\n\r\n") == Status::complete);
    auto req = parser.take_request();
    CHECK(req.path == "/a/b");
    CHECK(req.query == "c=d");
    RequestParser bare_host;
    REQUIRE(feed_all(bare_host, "GET https://example.com HTTP/1.1\r\n\r\n") == Status::complete);
    CHECK(bare_host.take_request().path == "/");
    RequestParser options;
    REQUIRE(feed_all(options, "OPTIONS * HTTP/1.1\r\n\r\n") == Status::complete);
    CHECK(options.take_request().path == "*");
    CHECK(error_status_of("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n") == 400);
}

TEST_CASE("net http parser: malformed request lines are 400") {
    for (std::string_view bad : {
             "GET\r\n\r\n",
             "GET /\r\n\r\n",
             "GET  / HTTP/1.1\r\n\r\n",
             "GET / HTTP/1.1 \r\n\r\n",
             "GET / HTTP/1.1 extra\r\n\r\n",
             "G@T / HTTP/1.1\r\n\r\n",
             " GET / HTTP/1.1\r\n\r\n",
             "GET /a\x01 HTTP/1.1\r\n\r\n",
             "GET /a#frag HTTP/1.1\r\n\r\n",
             "GET example.com:443 HTTP/1.1\r\n\r\n",
             "CONNECT example.com:443 HTTP/1.1\r\n\r\n",
             "GET / HTTP/1.1\n\n",
             "GET / HTTP/1.1\rX\r\n\r\n",
             "GET / http/1.1\r\n\r\n",
             "GET / HTTP/11\r\n\r\n",
             "GET / HTTP/1.x\r\n\r\n",
             "\x16\x03\x01\x02\x05\x01\x05\x01\xfc\x03\x03\r\n\r\n",
         }) {
        CAPTURE(bad);
        CHECK(error_status_of(bad) == 400);
    }
}

TEST_CASE("net http parser: unsupported versions are 505") {
    CHECK(error_status_of("GET / HTTP/2.0\r\n\r\n") == 505);
    CHECK(error_status_of("GET / HTTP/1.2\r\n\r\n") == 505);
    CHECK(error_status_of("GET / HTTP/0.9\r\n\r\n") == 505);
}

TEST_CASE("net http parser: malformed header fields are 400") {
    for (std::string_view bad : {
             "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
             "GET / HTTP/1.1\r\nName : value\r\n\r\n",
             "GET / HTTP/1.1\r\n: value\r\n\r\n",
             "GET / HTTP/1.1\r\nBad(Name): value\r\n\r\n",
             "GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
             "GET / HTTP/1.1\r\nX: a\r\n\tfolded\r\n\r\n",
             "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
             "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",
             "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n",
         }) {
        CAPTURE(bad);
        CHECK(error_status_of(std::string(bad)) == 400);
    }
    // NUL inside a string_view literal needs the explicit length.
    CHECK(error_status_of(std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26)) == 400);
    // obs-text in values is allowed.
    RequestParser parser;
    CHECK(feed_all(parser, "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n") == Status::complete);
}

TEST_CASE("net http parser: body framing conflicts") {
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501);
    CHECK(error_status_of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n") == 501);
    CHECK(error_status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
    CHECK(error_status_of("POST / HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n") == 400);
    CHECK(error_status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400);

    // Identical duplicates are one length (RFC 9112 §6.3).
    RequestParser same;
    REQUIRE(feed_all(same, "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc") == Status::complete);
    CHECK(same.take_request().body == "abc");
}

TEST_CASE("net http parser: malformed chunks") {
    std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::string_view bad : {
             "\r\n",
             "x\r\n",
             "0x5\r\nhello\r\n0\r\n\r\n",
             "-5\r\n",
             " 5\r\nhello\r\n",
             "5 x\r\nhello\r\n",
             "5\r\nhelloX\r\n",
             "5\r\nhello\n0\r\n\r\n",
             "5;ext\x01\r\nhello\r\n",
             "5\nhello\r\n",
             "00000000000000001\r\n",
             "0\r\nBad Trailer\r\n\r\n",
         }) {
        CAPTURE(bad);
        CHECK(error_status_of(head + std::string(bad)) == 400);
    }
    // Sixteen hex digits parse without overflow, then hit the body limit.
    CHECK(error_status_of(head + "ffffffffffffffff\r\n") == 413);
    CHECK(error_status_of(head + std::string(5000, '0') + "\r\n") == 400);
}

TEST_CASE("net http parser: limits") {
    ParserLimits limits;
    limits.max_body_bytes = 10;
    limits.max_header_bytes = 200;
    limits.max_headers = 5;
    limits.max_request_line = 100;

    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", limits) == 413);
    CHECK(error_status_of("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", limits) == 0);
    CHECK(error_status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\n", limits) == 413);
    CHECK(error_status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n4\r\nabcd\r\n0\r\n\r\n",
                          limits) == 0);

    // The request line limit answers before the line ends.
    CHECK(error_status_of("GET /" + std::string(200, 'a'), limits) == 414);
    CHECK(error_status_of("GET /" + std::string(80, 'a') + " HTTP/1.1\r\n\r\n", limits) == 0);

    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 6; ++i) many += "X" + std::to_string(i) + ": v\r\n";
    CHECK(error_status_of(many + "\r\n", limits) == 431);
    CHECK(error_status_of("GET / HTTP/1.1\r\nBig: " + std::string(300, 'x'), limits) == 431);
    CHECK(error_status_of("GET / HTTP/1.1\r\nA: " + std::string(100, 'x') + "\r\nB: " + std::string(100, 'x') + "\r\n\r\n",
                          limits) == 431);
    // Trailers count against the header limits too.
    CHECK(error_status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + std::string(300, 'x'),
                          limits) == 431);

    // Defaults: 16 KiB of header fields.
    RequestParser defaults;
    CHECK(feed_all(defaults, "GET / HTTP/1.1\r\nBig: " + std::string(17 * 1024, 'x') + "\r\n\r\n") == Status::error);
    CHECK(defaults.error().status == 431);
}

TEST_CASE("net http parser: Expect 100-continue is visible once headers are complete") {
    RequestParser parser;
    CHECK(feed_all(parser, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n") == Status::need_more);
    CHECK(parser.headers_complete());
    CHECK(parser.expects_continue());
    CHECK(parser.content_length() == 4);
    parser.feed("data");
    REQUIRE(parser.parse() == Status::complete);
    CHECK(parser.take_request().body == "data");
    CHECK_FALSE(parser.expects_continue());
}

TEST_CASE("net http parser: an error is sticky") {
    RequestParser parser;
    CHECK(feed_all(parser, "BAD\r\n") == Status::error);
    parser.feed("GET / HTTP/1.1\r\n\r\n");
    CHECK(parser.parse() == Status::error);
    CHECK(parser.error().status == 400);
    CHECK_FALSE(parser.error().message.empty());
}

TEST_CASE("net http parser: responses") {
    ResponseParser parser;
    parser.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    REQUIRE(parser.parse() == ResponseParser::Status::complete);
    auto r = parser.take_response();
    CHECK(r.status == 200);
    CHECK(r.reason == "OK");
    CHECK(r.body == "ok");

    ResponseParser chunked;
    chunked.feed("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    REQUIRE(chunked.parse() == ResponseParser::Status::complete);
    auto c = chunked.take_response();
    CHECK(c.status == 404);
    CHECK(c.body == "abc");

    ResponseParser until_close;
    until_close.feed("HTTP/1.0 200\r\n\r\nstream");
    CHECK(until_close.parse() == ResponseParser::Status::need_more);
    until_close.feed("ing");
    CHECK(until_close.parse() == ResponseParser::Status::need_more);
    REQUIRE(until_close.finish() == ResponseParser::Status::complete);
    auto u = until_close.take_response();
    CHECK(u.body == "streaming");
    CHECK(u.reason.empty());

    ResponseParser head;
    head.set_request_method("HEAD");
    head.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    REQUIRE(head.parse() == ResponseParser::Status::complete);
    CHECK(head.take_response().body.empty());

    ResponseParser truncated;
    truncated.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
    CHECK(truncated.parse() == ResponseParser::Status::need_more);
    CHECK(truncated.finish() == ResponseParser::Status::error);

    ParserLimits small;
    small.max_body_bytes = 4;
    ResponseParser too_big(small);
    too_big.feed("HTTP/1.1 200 OK\r\n\r\n12345");
    CHECK(too_big.parse() == ResponseParser::Status::error);
    CHECK(too_big.error().status == 413);

    for (std::string_view bad : {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099\r\n\r\n",
                                 "HTTP/1.1 200OK\r\n\r\n", "ICY 200 OK\r\n\r\n"}) {
        CAPTURE(bad);
        ResponseParser p;
        p.feed(bad);
        CHECK(p.parse() == ResponseParser::Status::error);
    }
}
