// The prpc convention (spec/agent.md §1): routing, JSON mode, decoding, error shapes.
#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include "dstack/base/hex.hpp"
#include "dstack/net/prpc.hpp"
#include "net-test.hpp"

using namespace dstack;
using namespace dstack::net;

namespace {

prpc::Service make_service(std::string prefix, std::string trim) {
    prpc::Service service(std::move(prefix), std::move(trim));
    service.add("Echo", [](const prpc::Call& call) -> Result<prpc::Reply> {
        rapidjson::Document out;
        out.CopyFrom(call.input, out.GetAllocator());
        return prpc::Reply(std::move(out));
    });
    service.add("Fail", [](const prpc::Call&) -> Result<prpc::Reply> { return make_error("outer: inner"); });
    service.add("Info", [](const prpc::Call& call) -> Result<prpc::Reply> {
        return prpc::Reply::json_text(fmt::format("{{\"method\":\"{}\",\"name\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}}",
                                                  call.method));
    }, prpc::Input::empty);
    service.add("Fields", [](const prpc::Call& call) -> Result<prpc::Reply> {
        auto path = call.string("path");
        if (!path) return std::move(path).take_error();
        auto data = call.bytes("data");
        if (!data) return std::move(data).take_error();
        auto count = call.u64("count");
        if (!count) return std::move(count).take_error();
        auto flag = call.boolean("flag");
        if (!flag) return std::move(flag).take_error();
        auto list = call.bytes_list("list");
        if (!list) return std::move(list).take_error();
        auto maybe = call.optional_u64("maybe");
        if (!maybe) return std::move(maybe).take_error();
        rapidjson::Document out;
        out.SetObject();
        auto& a = out.GetAllocator();
        out.AddMember("path", rapidjson::Value(path->c_str(), a), a);
        out.AddMember("data", prpc::hex_value(*data, a), a);
        out.AddMember("count", rapidjson::Value(*count), a);
        out.AddMember("flag", *flag, a);
        out.AddMember("list", rapidjson::Value(static_cast<std::uint64_t>(list->size())), a);
        out.AddMember("maybe", *maybe ? rapidjson::Value(**maybe) : rapidjson::Value(), a);
        return prpc::Reply(std::move(out));
    });
    service.add("Async", [](const prpc::Call&) -> asio::awaitable<Result<prpc::Reply>> {
        co_return prpc::Reply::null();
    });
    return service;
}

http::Response call(const prpc::Service& service, std::string method, std::string target, std::string body = {},
                    std::string content_type = "application/json") {
    asio::io_context io;
    http::RequestParser parser;
    std::string raw = method + " " + target + " HTTP/1.1\r\n";
    if (!content_type.empty()) raw += "Content-Type: " + content_type + "\r\n";
    raw += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    parser.feed(raw);
    REQUIRE(parser.parse() == http::RequestParser::Status::complete);
    auto request = parser.take_request();
    http::ConnectionInfo info;
    return test::run(io, [](const prpc::Service& service, http::Request request,
                            http::ConnectionInfo info) -> asio::awaitable<http::Response> {
        co_return co_await service.handle(request, info);
    }(service, std::move(request), info));
}

}  // namespace

TEST_CASE("net prpc: routing by prefix and trim") {
    auto root = make_service("/", "");
    CHECK(call(root, "POST", "/Echo", "{\"a\":1}").body == "{\"a\":1}");
    CHECK(call(root, "POST", "/prpc/Echo").status == 404);  // two segments
    CHECK(call(root, "POST", "/").status == 404);
    auto dotted = call(root, "POST", "/DstackGuest.Echo");
    CHECK(dotted.status == 400);
    CHECK(dotted.body == "{\n  \"error\": \"Service not found: DstackGuest.Echo\"\n}");

    auto tappd = make_service("/prpc/", "Tappd.");
    CHECK(call(tappd, "POST", "/prpc/Tappd.Echo", "{}").status == 200);
    CHECK(call(tappd, "POST", "/prpc/Echo", "{}").status == 200);
    CHECK(call(tappd, "POST", "/prpc/Tappd.Tappd.Echo", "{}").status == 200);
    CHECK(call(tappd, "POST", "/Echo", "{}").status == 404);
    CHECK(call(tappd, "PUT", "/prpc/Echo", "{}").status == 404);

    auto worker = make_service("/prpc", "Worker.");
    CHECK(worker.matches([] { http::Request r; r.method = "GET"; r.path = "/prpc/Worker.Info"; return r; }()));
    CHECK_FALSE(worker.matches([] { http::Request r; r.method = "GET"; r.path = "/prpcx/Info"; return r; }()));
    CHECK(*worker.method_name("/prpc/Worker.Info") == "Info");
    CHECK_FALSE(worker.method_name("/prpc/Info/x"));
    CHECK_FALSE(worker.method_name("/prpc/"));
    auto unknown = call(worker, "POST", "/prpc/Worker.Nope", "{}");
    CHECK(unknown.status == 400);
    CHECK(unknown.body.find("Service not found: Nope") != std::string::npos);

    auto api = make_service("/api", "");
    CHECK(call(api, "GET", "/api/Info").status == 200);
}

TEST_CASE("net prpc: JSON mode detection; protobuf requests are refused") {
    auto s = make_service("/prpc", "");
    CHECK(call(s, "POST", "/prpc/Echo?json", "{\"x\":\"y\"}", "").status == 200);
    CHECK(call(s, "POST", "/prpc/Echo?json=true", "{}", "").status == 200);
    CHECK(call(s, "POST", "/prpc/Echo?json=1", "{}", "").status == 200);
    CHECK(call(s, "POST", "/prpc/Echo?json=", "{}", "").status == 200);
    CHECK(call(s, "POST", "/prpc/Echo", "{}", "Application/JSON; charset=utf-8").status == 200);
    auto proto = call(s, "POST", "/prpc/Echo", "\x0a\x01x", "application/octet-stream");
    CHECK(proto.status == 400);
    CHECK(proto.body.find("protobuf") != std::string::npos);
    CHECK(*proto.headers.get("Content-Type") == "application/json");
    CHECK(call(s, "POST", "/prpc/Echo?json=false", "{}", "").status == 400);
    CHECK(call(s, "POST", "/prpc/Echo", "{}", "").status == 400);
}

TEST_CASE("net prpc: request decoding") {
    auto s = make_service("/prpc", "");
    // Empty body: the default message.
    CHECK(call(s, "POST", "/prpc/Echo").body == "{}");
    // GET: query fields become strings.
    auto get = call(s, "GET", "/prpc/Echo?path=%2Fa+b&x=2&json", "", "");
    CHECK(get.body == "{\"path\":\"/a b\",\"x\":\"2\",\"json\":\"\"}");
    auto bad_query = call(s, "GET", "/prpc/Echo?a=%zz");
    CHECK(bad_query.status == 400);
    // Not JSON, not an object, too deep, invalid UTF-8.
    CHECK(call(s, "POST", "/prpc/Echo", "{bad").status == 400);
    CHECK(call(s, "POST", "/prpc/Echo", "[1]").status == 400);
    CHECK(call(s, "POST", "/prpc/Echo", "null").status == 400);
    CHECK(call(s, "POST", "/prpc/Echo", std::string(100, '[') + std::string(100, ']')).status == 400);
    CHECK(call(s, "POST", "/prpc/Echo", "{\"a\":\"\xff\"}").status == 400);
    // A key given twice, at any depth, is refused rather than read one way here and another elsewhere.
    auto twice = call(s, "POST", "/prpc/Echo", R"({"a":1,"a":2})");
    CHECK(twice.status == 400);
    CHECK(twice.body == "{\n  \"error\": \"failed to decode request: $: duplicate key 'a'\"\n}");
    CHECK(call(s, "POST", "/prpc/Echo", R"({"a":[{"b":1,"b":1}]})").body ==
          "{\n  \"error\": \"failed to decode request: $.a[0]: duplicate key 'b'\"\n}");
    CHECK(call(s, "POST", "/prpc/Echo", "[1]").body ==
          "{\n  \"error\": \"failed to decode request: invalid type: an array, expected an object\"\n}");
    CHECK(call(s, "POST", "/prpc/Echo", "{} {}").status == 400);
    // A repeated query field is refused like a duplicate JSON key (upstream's serde_qs takes the
    // last one; a proxy in front could read the first).
    CHECK(call(s, "GET", "/prpc/Echo?x=1&x=2").body ==
          "{\n  \"error\": \"failed to decode request: duplicate key 'x' in the query\"\n}");
    // Empty-input methods never look at the body.
    CHECK(call(s, "POST", "/prpc/Info", "garbage").status == 200);
    CHECK(call(s, "POST", "/prpc/Info", "null").status == 200);
    CHECK(call(s, "GET", "/prpc/Info?x=%zz").status == 200);
    CHECK(call(s, "POST", "/prpc/Async", "{}").body == "null");
}

TEST_CASE("net prpc: field readers") {
    auto s = make_service("/prpc", "");
    auto ok = call(s, "POST", "/prpc/Fields",
                   R"({"path":"p","data":"0x0xABcd","count":7,"flag":true,"list":["00","0x11"],"maybe":null,"extra":1})");
    CHECK(ok.status == 200);
    CHECK(ok.body == R"({"path":"p","data":"abcd","count":7,"flag":true,"list":2,"maybe":null})");
    auto defaults = call(s, "POST", "/prpc/Fields", "{}");
    CHECK(defaults.body == R"({"path":"","data":"","count":0,"flag":false,"list":0,"maybe":null})");
    auto query = call(s, "GET", "/prpc/Fields?count=12&flag=true&maybe=3&data=ff");
    CHECK(query.body == R"({"path":"","data":"ff","count":12,"flag":true,"list":0,"maybe":3})");

    CHECK(call(s, "POST", "/prpc/Fields", R"({"data":"abc"})").status == 400);
    CHECK(call(s, "POST", "/prpc/Fields", R"({"data":"zz"})").status == 400);
    CHECK(call(s, "POST", "/prpc/Fields", R"({"data":12})").status == 400);
    auto wrong = call(s, "POST", "/prpc/Fields", R"({"path":5})");
    CHECK(wrong.status == 400);
    CHECK(wrong.body == "{\n  \"error\": \"$.path: expected a string, got 5\"\n}");
    CHECK(call(s, "POST", "/prpc/Fields", R"({"list":["00",7]})").body ==
          "{\n  \"error\": \"$.list[1]: expected a hex string, got 7\"\n}");
    CHECK(call(s, "GET", "/prpc/Fields?count=x").body == "{\n  \"error\": \"$.count: 'x' is not an unsigned integer\"\n}");
    // JSON bodies keep JSON types: a string is not a number there.
    CHECK(call(s, "POST", "/prpc/Fields", R"({"count":"7"})").status == 400);
    CHECK(call(s, "POST", "/prpc/Fields", R"({"count":-1})").status == 400);
    CHECK(call(s, "GET", "/prpc/Fields?count=x").status == 400);
    CHECK(call(s, "GET", "/prpc/Fields?flag=yes").status == 400);
    CHECK(call(s, "POST", "/prpc/Fields", R"({"list":"00"})").status == 400);
}

TEST_CASE("net prpc: errors and output encoding") {
    auto s = make_service("/prpc", "");
    auto fail = call(s, "POST", "/prpc/Fail", "{}");
    CHECK(fail.status == 400);
    CHECK(fail.body == "{\n  \"error\": \"outer: inner\"\n}");
    CHECK(*fail.headers.get("Content-Type") == "application/json");

    // Non-ASCII output is escaped, so byte length equals JS string length.
    auto info = call(s, "GET", "/prpc/Info");
    CHECK(info.body == "{\"method\":\"Info\",\"name\":\"caf\\u00E9 \\uD83D\\uDE00\"}");
    auto echoed = call(s, "POST", "/prpc/Echo", "{\"k\":\"\xe2\x82\xac\"}");
    CHECK(echoed.body == "{\"k\":\"\\u20AC\"}");

    CHECK(prpc::error_response("say \"hi\"\n").body == "{\n  \"error\": \"say \\\"hi\\\"\\n\"\n}");
    CHECK(*prpc::Reply::json_text("[1,2]").serialize() == "[1,2]");
    CHECK_FALSE(prpc::Reply::json_text("\xc3\xa9 not json").serialize().ok());
}
