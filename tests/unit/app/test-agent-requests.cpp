// The agent's request decoders (spec/agent.md §1 item 3, §2-§4): defaults for missing fields,
// GET queries parsed into typed fields, and what we refuse before a handler runs: unknown
// fields, oversized fields, report data over 64 bytes, reversed validity.
#include <doctest/doctest.h>

#include "dstack/app/agent-requests.hpp"
#include "dstack/app/app-info-encoding.hpp"
#include "dstack/base/hex.hpp"

using namespace dstack;

namespace {

net::http::Request post(std::string body) {
    net::http::Request request;
    request.method = "POST";
    request.body = std::move(body);
    return request;
}

net::http::Request get(std::string query) {
    net::http::Request request;
    request.method = "GET";
    request.query = std::move(query);
    return request;
}

template <typename Decode>
auto decode(const net::http::Request& request, Decode decoder) {
    auto input = net::prpc::decode_input(request, net::prpc::Input::message);
    REQUIRE(input);
    return decoder(input->message());
}

}  // namespace

TEST_CASE("agent requests: missing fields are defaults; an empty body is the default message") {
    auto key = decode(post(""), app::decode_get_key);
    REQUIRE(key);
    CHECK(key->path.empty());
    CHECK(key->algorithm.empty());
    auto tls = decode(post("{}"), app::decode_get_tls_key);
    REQUIRE(tls);
    CHECK_FALSE(tls->usage_ra_tls);
    CHECK_FALSE(tls->not_before.has_value());
}

TEST_CASE("agent requests: GET queries give typed fields; json is the mode flag, not a field") {
    auto tls = decode(get("subject=a&usage_ra_tls=true&not_before=10&not_after=20&json"), app::decode_get_tls_key);
    REQUIRE(tls);
    CHECK(tls->subject == "a");
    CHECK(tls->usage_ra_tls);
    CHECK(*tls->not_before == 10);
    CHECK(*tls->not_after == 20);
    auto quote = decode(get("report_data=0xABcd"), app::decode_raw_quote);
    REQUIRE(quote);
    CHECK(hex_encode(quote->report_data) == "abcd");
    auto bad = decode(get("usage_ra_tls=maybe"), app::decode_get_tls_key);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("usage_ra_tls") != std::string::npos);
}

TEST_CASE("agent requests: unknown fields are refused with the fields the method takes") {
    auto quote = decode(post(R"({"reportdata":"00"})"), app::decode_raw_quote);
    REQUIRE_FALSE(quote);
    CHECK(quote.error().message == "unknown field 'reportdata' (this method takes: report_data)");
    auto key = decode(get("path=a&purpse=b"), app::decode_get_key);
    REQUIRE_FALSE(key);
    CHECK(key.error().message.find("'purpse'") != std::string::npos);
}

TEST_CASE("agent requests: limits and upstream's errors") {
    auto long_data = decode(post(R"({"report_data":")" + std::string(130, 'a') + R"("})"), app::decode_raw_quote);
    REQUIRE_FALSE(long_data);
    CHECK(long_data.error().message == "Report data is too long");
    auto exactly = decode(post(R"({"report_data":")" + std::string(128, 'a') + R"("})"), app::decode_raw_quote);
    CHECK(exactly);
    auto reversed = decode(post(R"({"not_before":5,"not_after":5})"), app::decode_get_tls_key);
    REQUIRE_FALSE(reversed);
    CHECK(reversed.error().message == "not_before must be earlier than not_after");
    std::string names = "[";
    for (int i = 0; i < 65; ++i) names += std::string(i ? "," : "") + "\"n\"";
    auto many = decode(post(R"({"alt_names":)" + names + "]}"), app::decode_get_tls_key);
    REQUIRE_FALSE(many);
    CHECK(many.error().message.find("more than 64") != std::string::npos);
    auto path = decode(post(R"({"path":")" + std::string(4097, 'p') + R"("})"), app::decode_get_key);
    REQUIRE_FALSE(path);
    CHECK(path.error().message.find("path: longer than 4096 bytes") != std::string::npos);
    auto payload = decode(post(R"({"event":"e","payload":")" + std::string(2 * 64 * 1024 + 2, 'a') + R"("})"),
                          app::decode_emit_event);
    REQUIRE_FALSE(payload);
    auto wrong_type = decode(post(R"({"data":5})"), app::decode_sign);
    REQUIRE_FALSE(wrong_type);
    CHECK(wrong_type.error().message.find("data") != std::string::npos);
}

TEST_CASE("app info encoding: a MessagePack array of 9, byte fields as bin") {
    app::AppInfo info;
    info.app_id = Bytes(20, 0x11);
    info.compose_hash = Bytes(32, 0x22);
    info.key_provider_info = Bytes{'{', '}'};
    info.init_script_hashes = {Bytes(32, 0x33)};
    auto encoded = app::encode_app_info_msgpack(info);
    std::string expected = "99" "c414" + std::string(40, '1') + "c420" + std::string(64, '2') +
                           "c400" "c400" "c400" "c400" "c400" "c4027b7d" "91c420" + std::string(64, '3');
    CHECK(hex_encode(encoded) == expected);
}
