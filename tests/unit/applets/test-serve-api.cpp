// verify serve's wire format, without sockets: upstream's request fields and its failure response.
#include <doctest/doctest.h>

#include <string>

#include "verify/serve-api.hpp"

using namespace dstack;
using namespace dstack::applets::verify;

TEST_CASE("serve api: the request's fields are optional strings, null is absent, other types are refused") {
    auto request = parse_verification_request(R"({"quote":"00","event_log":"[]","vm_config":null,"debug":true})");
    REQUIRE(request);
    CHECK(request->quote == "00");
    CHECK(request->event_log == "[]");
    CHECK_FALSE(request->vm_config);
    CHECK(request->debug);
    CHECK_FALSE(parse_verification_request(R"({"quote":1})"));
    CHECK_FALSE(parse_verification_request(R"({"debug":"yes"})"));
    CHECK_FALSE(parse_verification_request("[]"));
    CHECK_FALSE(parse_verification_request("{"));
}

TEST_CASE("serve api: evidence needs a quote and an event log unless an attestation is given") {
    auto no_quote = evidence_from_request(*parse_verification_request("{}"));
    REQUIRE_FALSE(no_quote);
    CHECK(no_quote.error().message == "Quote is required");
    auto no_log = evidence_from_request(*parse_verification_request(R"({"quote":"00"})"));
    REQUIRE_FALSE(no_log);
    CHECK(no_log.error().message == "Event log is required");
}

TEST_CASE("serve api: a failure response reports nothing as verified") {
    ResponseSettings settings;
    settings.simulated = true;
    auto json = failure_response_json("Internal error: x", settings);
    CHECK(json.find(R"("simulated":true)") != std::string::npos);
    CHECK(json.find(R"("is_valid":false)") != std::string::npos);
    CHECK(json.find(R"("reason":"Internal error: x")") != std::string::npos);
    CHECK(json.find(R"("quote_verified":false)") != std::string::npos);
    CHECK(json.find(R"("event_log_verified":false)") != std::string::npos);
}
