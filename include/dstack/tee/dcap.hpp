// DCAP quote verification: dcap-qvl's procedure, step for step and with its error texts, against a
// pinned trust anchor, at an explicit time. Every step is recorded as a named check so that a
// verdict can say what passed, what failed and what was never reached.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/pck-extension.hpp"
#include "dstack/tee/quote.hpp"
#include "dstack/tee/tcb-info.hpp"

namespace dstack::tee {

// The Intel SGX Root CA (Intel_SGX_Provisioning_Certification_RootCA.cer), compiled in.
const crypto::Certificate& intel_sgx_root_ca();

enum class CheckState { passed, failed, not_checked };
std::string_view check_state_name(CheckState state);  // "passed", "failed", "not checked"

// One check of a verification. Programs (the verify applet's renderer and serve API, --json's
// readers) match on `id`; `name` is for people and may be reworded.
//
// Ids are "<layer>.<what>": lowercase ASCII, words joined by "_", stable once released (a check
// whose meaning changes gets a new id). The layer says which part of the verification made it:
//   dcap.*      DCAP quote verification, dcap-qvl's steps (below)
//   eventlog.*  event-log replay into the RTMRs       binding.*  report-data bindings
//   identity.*  dstack's identity values              expect.*   the caller's expectations
//   policy.*    the TCB / debug policy                ratls.*    the RA-TLS certificate
//   os_image.*  the OS image measurement
// (all but dcap.* are app::verify_evidence's, listed in app/verdict.hpp).
struct Check {
    std::string id;      // e.g. "dcap.quote_signature"
    std::string name;    // e.g. "quote signature"
    CheckState state = CheckState::not_checked;
    std::string detail;  // why it failed / was not checked, or what passed (e.g. the status)
};

// The DCAP steps' ids, in the order they run.
namespace check_id {
inline constexpr std::string_view crls = "dcap.crls";
inline constexpr std::string_view quote_format = "dcap.quote_format";
inline constexpr std::string_view tcb_info_validity = "dcap.tcb_info_validity";
inline constexpr std::string_view tcb_info_chain = "dcap.tcb_info_chain";
inline constexpr std::string_view tcb_info_signature = "dcap.tcb_info_signature";
inline constexpr std::string_view qe_identity_validity = "dcap.qe_identity_validity";
inline constexpr std::string_view qe_identity_chain = "dcap.qe_identity_chain";
inline constexpr std::string_view qe_identity_signature = "dcap.qe_identity_signature";
inline constexpr std::string_view qe_identity_kind = "dcap.qe_identity_kind";
inline constexpr std::string_view pck_chain = "dcap.pck_chain";
inline constexpr std::string_view qe_report_signature = "dcap.qe_report_signature";
inline constexpr std::string_view qe_report_binding = "dcap.qe_report_binding";
inline constexpr std::string_view qe_identity_match = "dcap.qe_identity_match";
inline constexpr std::string_view quote_signature = "dcap.quote_signature";
inline constexpr std::string_view platform_tcb = "dcap.platform_tcb";
inline constexpr std::string_view tcb_status = "dcap.tcb_status";
inline constexpr std::string_view report_attributes = "dcap.report_attributes";
}  // namespace check_id

// The check with this id, or null.
const Check* find_check(const std::vector<Check>& checks, std::string_view id);

// Remembers the outcome of the collateral-only steps (CRLs, TCB info and QE identity dates, chains
// and signatures) per (collateral fingerprint, trust anchor, now), so quotes sharing collateral
// verify with only their own signatures. Thread-safe; bounded (least recently used is dropped).
class CollateralCache {
public:
    explicit CollateralCache(std::size_t capacity = 32);
    ~CollateralCache();
    CollateralCache(const CollateralCache&) = delete;
    CollateralCache& operator=(const CollateralCache&) = delete;

    struct State;
    State& state() { return *state_; }

private:
    std::unique_ptr<State> state_;
};

struct DcapOptions {
    DcapOptions() = default;
    UnixSeconds now = 0;
    std::optional<crypto::Certificate> trust_anchor;  // default: intel_sgx_root_ca()
    bool allow_debug = false;       // debug TDs / enclaves (never a debug QE)
    bool allow_service_td = false;  // TD 1.5 with a non-zero MRSERVICETD
    CollateralCache* cache = nullptr;  // optional; not owned
};

struct DcapReport {
    Quote quote;
    TcbVerdict verdict;           // merged platform (+TDX module) and QE
    TcbVerdict platform_verdict;  // platform incl. the TDX module
    TcbVerdict qe_verdict;
    PckExtension pck;
    Bytes ppid;
};

struct DcapResult {
    std::vector<Check> checks;          // every step, in order
    std::optional<DcapReport> report;   // set when every step passed
    std::optional<Error> error;         // the first failure, in dcap-qvl's wording

    bool ok() const { return report.has_value(); }
};

// A quote's bytes and their parse, made once per verification: choosing collateral, DCAP and the
// verdict's body values all read this one parse. The signature is checked over `raw`, which must
// outlive this value.
struct ParsedQuote {
    explicit ParsedQuote(ByteView bytes) : raw(bytes), quote(parse_quote(bytes)) {}

    ByteView raw;
    Result<Quote> quote;  // parse_quote(raw)
};

DcapResult verify_quote(const ParsedQuote& quote, const Collateral& collateral, const DcapOptions& options);
// Parses the bytes, then as above.
DcapResult verify_quote(ByteView raw_quote, const Collateral& collateral, const DcapOptions& options);

// The steps of verify_quote that need no quote (CRLs; TCB info and QE identity dates, signing
// chains and signatures; the PCK chain when the collateral carries one), at options.now against
// the trust anchor, with options.cache. The error is the first failing step's, as verify_quote
// words it. Collateral that passes is worth keeping; it still says nothing about any quote.
Result<void> verify_collateral(const Collateral& collateral, const DcapOptions& options);

// Whether the quoted TD (TD attribute bit 0) or enclave (ATTRIBUTES.DEBUG) runs in debug mode: the
// host can read and change its memory, so its measurements say nothing about what it runs.
bool is_debug(const Quote& quote);

// dcap-qvl's JSON VerifiedReport (status, advisory_ids, report, ppid, qe_status, platform_status).
std::string dcap_report_json(const DcapReport& report);

}  // namespace dstack::tee
