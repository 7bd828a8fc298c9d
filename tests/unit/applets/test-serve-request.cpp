// `dstack verify serve`'s POST /verify body (dstack-verifier's VerificationRequest): decoding,
// limits, and a key given twice refused at any depth.
#include <doctest/doctest.h>

#include <string>

#include "verify/serve-api.hpp"

using namespace dstack;
using dstack::applets::verify::evidence_from_request;
using dstack::applets::verify::max_request_body;
using dstack::applets::verify::parse_verification_request;

namespace {

std::string error_of(std::string_view body) {
    auto request = parse_verification_request(body);
    REQUIRE_FALSE(request.ok());
    return request.error().message;
}

}  // namespace

TEST_CASE("serve request: fields, null as absent, unknown fields ignored") {
    auto request = parse_verification_request(
        R"({"quote":"0400","event_log":"[]","vm_config":"{}","attestation":null,"debug":true,"extra":{"x":[1]}})");
    REQUIRE_MESSAGE(request.ok(), (request.ok() ? "" : request.error().message));
    CHECK(*request->quote == "0400");
    CHECK(*request->event_log == "[]");
    CHECK(*request->vm_config == "{}");
    CHECK_FALSE(request->attestation.has_value());
    CHECK(request->debug);
    auto empty = parse_verification_request("{}");
    REQUIRE(empty.ok());
    CHECK_FALSE(empty->quote.has_value());
    CHECK_FALSE(empty->debug);
}

TEST_CASE("serve request: errors name the JSON path") {
    CHECK(error_of(R"({"quote":5})") == "invalid request: $.quote: expected a string, got 5");
    CHECK(error_of(R"({"event_log":[]})") == "invalid request: $.event_log: expected a string, got an array");
    CHECK(error_of(R"({"debug":"yes"})") == "invalid request: $.debug: expected a boolean, got a string");
    CHECK(error_of("[]") == "invalid request: $: expected an object, got an array");
    CHECK(error_of(R"({"quote":"0400",)").rfind("invalid request: not valid JSON: ", 0) == 0);
    CHECK(error_of(R"({"quote":"0400"} {})").rfind("invalid request: not valid JSON: ", 0) == 0);
    CHECK(error_of("{\"quote\":\"\xff\"}").rfind("invalid request: not valid JSON: Invalid encoding", 0) == 0);
    CHECK(error_of(std::string(100000, '[')) == "invalid request: JSON nests deeper than 8 levels (at byte 8)");
    std::string big = R"({"quote":")" + std::string(max_request_body, '0') + "\"}";
    CHECK(error_of(big) == fmt::format("invalid request: JSON text of {} bytes exceeds the {}-byte limit", big.size(),
                                       max_request_body));
}

TEST_CASE("serve request: a key given twice is refused, at any depth") {
    // The first 'quote' would be verified by one reader, the second by another.
    CHECK(error_of(R"({"quote":"0400","event_log":"[]","quote":"0500"})") == "invalid request: $: duplicate key 'quote'");
    CHECK(error_of(R"({"attestation":"00","attestation":"00"})") == "invalid request: $: duplicate key 'attestation'");
    CHECK(error_of(R"({"quote":"0400","extra":{"a":[{"k":1,"k":2}]}})") == "invalid request: $.extra.a[0]: duplicate key 'k'");
    // The event log travels as a string of JSON: its own duplicates are refused when it is read.
    auto request = parse_verification_request(
        R"({"quote":"0400","event_log":"[{\"imr\":3,\"event_type\":1,\"event\":\"\",\"event_payload\":\"\",\"imr\":0}]"})");
    REQUIRE(request.ok());
    auto evidence = evidence_from_request(*request);
    REQUIRE_FALSE(evidence.ok());
    CHECK(evidence.error().message == "Failed to parse event log: $[0]: duplicate key 'imr'");
}
