// One verdict for one piece of evidence: DCAP verification of the quote, event-log replay against
// the quote's RTMRs, the report-data binding, dstack's identity values, the caller's expectations
// and the TCB policy, each as a named check. Strict by default: only UpToDate without advisories
// passes, and every relaxation is listed in the verdict.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dstack/app/identity.hpp"
#include "dstack/tee/attestation.hpp"
#include "dstack/tee/dcap.hpp"

namespace dstack::app {

// The ids of the checks verify_evidence adds after DCAP's (tee::check_id; the scheme is in
// tee/dcap.hpp). Each one appears at most once in a verdict.
namespace check_id {
inline constexpr std::string_view boot_rtmrs = "eventlog.rtmr0_2";      // boot events replay RTMR0-2
inline constexpr std::string_view runtime_rtmr = "eventlog.rtmr3";      // runtime events replay RTMR3
inline constexpr std::string_view app_identity = "identity.app_info";   // identity values from RTMR3's events
inline constexpr std::string_view report_data = "binding.report_data";  // the container's report data is the quote's
inline constexpr std::string_view certificate_key = "binding.certificate_key";  // RA-TLS: quote commits to the key
inline constexpr std::string_view ratls_validity = "ratls.validity";    // every certificate valid at `now`
inline constexpr std::string_view ratls_signature = "ratls.signature";  // self-signed, or by the PEM's issuer
inline constexpr std::string_view expected_report_data = "expect.report_data";
inline constexpr std::string_view expected_compose_hash = "expect.compose_hash";
inline constexpr std::string_view expected_app_id = "expect.app_id";
inline constexpr std::string_view expected_os_image_hash_event = "expect.os_image_hash_event";  // RTMR3's event only
inline constexpr std::string_view expected_mrtd = "expect.mrtd";
inline constexpr std::string_view expected_rtmr[3] = {"expect.rtmr0", "expect.rtmr1", "expect.rtmr2"};
inline constexpr std::string_view os_image_measurement = "os_image.measurement";  // never computed here yet
inline constexpr std::string_view debug = "policy.debug";  // debug TD / enclave refused or allowed
inline constexpr std::string_view tcb_policy = "policy.tcb";
}  // namespace check_id

struct Policy {
    Policy() = default;
    std::vector<tee::TcbStatus> allowed_statuses{tee::TcbStatus::up_to_date};
    std::vector<std::string> allowed_advisories;  // "*" allows any
    bool allow_debug = false;

    // Human-readable list of what this policy relaxes compared to the strict default.
    std::vector<std::string> relaxations() const;
};

// Values the caller expects; each one given becomes a check.
struct Expectations {
    Expectations() = default;
    std::optional<Bytes> report_data;  // compared with the quote's (zero-padded to 64 bytes)
    std::optional<Bytes> compose_hash; // SHA-256 of the expected app-compose.json
    std::optional<Bytes> app_id;
    std::optional<Bytes> os_image_hash;  // compared with the os-image-hash event (not a measurement)
    std::optional<Bytes> mrtd;
    std::optional<Bytes> rtmr[3];
};

struct Verdict {
    bool valid = false;
    bool simulated = false;       // verified against a trust anchor other than Intel's root
    std::string reason;           // why invalid: the first failed check
    std::string source;           // what the input was
    UnixSeconds verified_at = 0;  // the time the collateral and certificates were judged at
    tee::DcapResult dcap;         // DCAP checks, report and first error
    std::optional<tee::Quote> quote;  // as parsed (its values are trustworthy only when dcap.ok())
    // Every check: DCAP's, then event log, identity, bindings, RA-TLS certificate, expectations, policy.
    std::vector<tee::Check> checks;
    std::optional<AppInfo> app_info;
    std::vector<std::string> relaxations;
};

// `quote` is the parse of evidence.quote (callers that parse it to choose collateral pass theirs,
// so that it is parsed once); the other overload parses it.
Verdict verify_evidence(const tee::Evidence& evidence, const tee::ParsedQuote& quote, const tee::Collateral& collateral,
                        const tee::DcapOptions& options, const Policy& policy, const Expectations& expectations);
Verdict verify_evidence(const tee::Evidence& evidence, const tee::Collateral& collateral, const tee::DcapOptions& options,
                        const Policy& policy, const Expectations& expectations);

// The verdict as JSON (the verify applet's --json output).
std::string verdict_json(const Verdict& verdict);
// The checks as a JSON array of {"id", "name", "state", "detail"} (in --json and serve's responses).
std::string checks_json(const std::vector<tee::Check>& checks);
// The identity values as upstream's verifier writes its app_info object (hex strings).
std::string app_info_json(const AppInfo& info);

}  // namespace dstack::app
