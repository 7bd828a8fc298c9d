// dstack-verifier's POST /verify wire format (spec/verifier.md §4.6): the request decoded into
// Evidence, and a Verdict rendered as upstream's VerificationResponse. No sockets here, so the
// mapping can be tested alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "dstack/app/verdict.hpp"
#include "dstack/base/result.hpp"
#include "dstack/tee/attestation.hpp"

namespace dstack::applets::verify {

// Upstream's body limit is Rocket's JSON default; real requests (a quote and an event log in hex)
// are a few tens of KiB.
inline constexpr std::size_t max_request_body = 2 * 1024 * 1024;

// VerificationRequest: every field optional, unknown fields ignored, null = absent.
struct VerificationRequest {
    VerificationRequest() = default;  // travels into coroutines (README, g++ 12 pitfalls)

    std::optional<std::string> quote;        // hex
    std::optional<std::string> event_log;    // a JSON array, as a string
    std::optional<std::string> vm_config;    // a JSON document, as a string
    std::optional<std::string> attestation;  // hex of a V0 attestation
    // Accepted and ignored: upstream's debug extras (acpi_tables, rtmr_debug) come from the OS
    // image measurement, which this verifier does not compute.
    bool debug = false;
};

// At most max_request_body bytes; a key given twice, at any depth, is refused. Errors start with
// "invalid request: " and name the JSON path ("invalid request: $.quote: expected a string, got 5").
Result<VerificationRequest> parse_verification_request(std::string_view body);

// With `attestation`, the V0 attestation (top-level quote / event_log / vm_config ignored);
// otherwise quote ("Quote is required") and event_log ("Event log is required"), the report
// data taken from the quote itself.
Result<tee::Evidence> evidence_from_request(const VerificationRequest& request);

struct ResponseSettings {
    // OS image measurements are not computed here; only this flag lets evidence pass without them.
    bool skip_os_image = false;
    // The server verifies against a root CA other than Intel's (--trust-root): every response says
    // "simulated": true, and none is valid unless the operator also chose --accept-simulated.
    bool simulated = false;
    bool accept_simulated = false;
};

// The VerificationResponse for a verdict: is_valid, reason and details as upstream names them,
// then our additions: "simulated" and every check ({"id", "name", "state", "detail"}, as --json).
std::string verification_response_json(const app::Verdict& verdict, const ResponseSettings& settings);

// A response with every detail unverified, no checks, and this reason (e.g. "Internal error: ...").
std::string failure_response_json(std::string_view reason, const ResponseSettings& settings);

// The text of the OS image failure while measurements are not computed.
inline constexpr std::string_view os_image_not_verified_reason =
    "OS image hash verification failed: not implemented by this verifier "
    "(start it with --skip-os-image to accept evidence without it)";

// The reason of an otherwise valid response from a server started with --trust-root.
inline constexpr std::string_view simulated_reason =
    "Quote verification failed: simulated TEE: the quote verified against the test root CA given with --trust-root, "
    "not Intel's (start the verifier with --accept-simulated as well to accept simulated evidence)";

}  // namespace dstack::applets::verify
