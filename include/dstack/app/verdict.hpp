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
    std::optional<Bytes> os_image_hash;
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
    std::vector<tee::Check> checks;  // every check: DCAP's, then event log, binding, identity, expectations, policy
    std::optional<AppInfo> app_info;
    std::vector<std::string> relaxations;
};

Verdict verify_evidence(const tee::Evidence& evidence, const tee::Collateral& collateral, const tee::DcapOptions& options,
                        const Policy& policy, const Expectations& expectations);

// The verdict as JSON (the verify applet's --json output).
std::string verdict_json(const Verdict& verdict);
// The identity values as upstream's verifier writes its app_info object (hex strings).
std::string app_info_json(const AppInfo& info);

}  // namespace dstack::app
