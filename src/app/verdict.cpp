// From evidence to one verdict. DCAP first (its checks lead the list); then what only a dstack
// verifier knows: the event log replayed into the quote's RTMRs, the report-data binding, the
// identity values, the RA-TLS certificate, the caller's expectations, and the debug and TCB policy. A check whose inputs are absent
// is "not checked" with the reason, never passed.
#include "dstack/app/verdict.hpp"

#include "check-list.hpp"

#include <algorithm>

#include "dstack/base/hex.hpp"
#include "dstack/base/printable.hpp"

namespace dstack::app {

std::vector<std::string> Policy::relaxations() const {
    std::vector<std::string> out;
    for (auto status : allowed_statuses)
        if (status != tee::TcbStatus::up_to_date) out.push_back(fmt::format("TCB status {} accepted", tee::tcb_status_name(status)));
    for (const auto& advisory : allowed_advisories)
        out.push_back(advisory == "*" ? std::string("any advisory accepted") : fmt::format("advisory {} accepted", advisory));
    if (allow_debug) out.push_back("debug TDs / enclaves accepted");
    return out;
}

namespace {

using tee::Check;
using tee::CheckState;

const CheckName boot_rtmrs_check{check_id::boot_rtmrs, "event log replays RTMR0-2"};
const CheckName runtime_rtmr_check{check_id::runtime_rtmr, "runtime events replay RTMR3"};
const CheckName app_identity_check{check_id::app_identity, "app identity"};
const CheckName debug_check{check_id::debug, "debug mode"};
const CheckName tcb_policy_check{check_id::tcb_policy, "TCB policy"};

std::vector<tee::TdxEvent> runtime_events_of(const tee::Evidence& evidence) {
    if (evidence.runtime_events) return *evidence.runtime_events;
    std::vector<tee::TdxEvent> events;
    for (const auto& event : evidence.event_log)
        if (event.event_type == tee::runtime_event_type) events.push_back(event);
    return events;
}

void check_boot_rtmrs(const tee::Evidence& evidence, const tee::TdReport10& td, CheckList& checks) {
    const auto& name = boot_rtmrs_check;
    if (evidence.event_log.empty()) return checks.skip(name, "the input carries no event log");
    std::vector<const tee::TdxEvent*> boot_events;
    for (const auto& event : evidence.event_log) {
        // A TD has RTMR0-3 only: an event for any other register measures nothing, so a log that
        // holds one is not the log the quote was made from.
        if (event.imr > 3) return checks.fail(name, fmt::format("event '{}' is for RTMR{}, which a TD does not have",
                                                                event.event, event.imr));
        if (event.imr < 3) boot_events.push_back(&event);
    }
    if (boot_events.empty()) return checks.skip(name, "the event log holds no boot-time (RTMR0-2) events");
    // Certificates and V0 attestations carry the stripped log: of the boot events only the three
    // ACPI ones of RTMR0 remain (the runtime events' digests are emptied: they are recomputed).
    bool only_acpi = std::all_of(boot_events.begin(), boot_events.end(), [](const tee::TdxEvent* e) {
        return e->event_type == 10 && std::string_view(as_chars(e->event_payload)) == "ACPI DATA";
    });
    // Stripped means no digest; a digest of another length than SHA-384's is a broken log.
    for (const auto* event : boot_events)
        if (!event->digest.empty() && event->digest.size() != 48)
            return checks.fail(name, fmt::format("event '{}' of RTMR{} has a {}-byte digest (SHA-384 digests are 48 bytes)",
                                                 event->event, event->imr, event->digest.size()));
    bool digests_missing = std::any_of(boot_events.begin(), boot_events.end(),
                                       [](const tee::TdxEvent* e) { return e->digest.empty(); });
    if (only_acpi || digests_missing)
        return checks.skip(name, "the event log is stripped (no boot digests); RTMR0-2 need the OS image measurement, "
                                 "which this verifier does not compute yet");
    std::vector<tee::TdxEvent> boot_log;
    for (const auto* event : boot_events) boot_log.push_back(*event);
    auto rtmrs = tee::replay_rtmrs(boot_log);
    if (!rtmrs) return checks.fail(name, rtmrs.error().message);
    const tee::Fixed<48>* quoted[3] = {&td.rt_mr0, &td.rt_mr1, &td.rt_mr2};
    for (int i = 0; i < 3; ++i) {
        if (!std::equal((*rtmrs)[i].begin(), (*rtmrs)[i].end(), quoted[i]->begin()))
            return checks.fail(name, fmt::format("RTMR{} mismatch, quoted: {}, replayed: {}", i, hex_encode(*quoted[i]),
                                                 hex_encode((*rtmrs)[i])));
    }
    checks.pass(name, fmt::format("{} boot events", boot_log.size()));
}

// Returns whether RTMR3 was verified (identity values rest on it).
bool check_runtime_rtmr(const tee::Evidence& evidence, const std::vector<tee::TdxEvent>& runtime_events,
                        const tee::TdReport10& td, CheckList& checks) {
    const auto& name = runtime_rtmr_check;
    if (evidence.event_log.empty() && !evidence.runtime_events) {
        checks.skip(name, "the input carries no event log");
        return false;
    }
    for (const auto& event : runtime_events) {
        if (event.version != 2) continue;
        if (auto ok = tee::validate_v2_preimage(event); !ok) {
            checks.fail(name, fmt::format("event {}: {}", event.event, ok.error().message));
            return false;
        }
    }
    auto replayed = tee::replay_runtime_events(runtime_events);
    if (!std::equal(replayed.begin(), replayed.end(), td.rt_mr3.begin())) {
        checks.fail(name, fmt::format("RTMR3 mismatch, quoted: {}, replayed: {}", hex_encode(td.rt_mr3), hex_encode(replayed)));
        return false;
    }
    checks.pass(name, fmt::format("{} runtime events", runtime_events.size()));
    return true;
}

Bytes padded_report_data(ByteView given) {
    Bytes out(given.begin(), given.end());
    out.resize(64, 0);
    return out;
}

// Step 15 of DCAP already refused a debug TD or enclave unless the policy allows debug; this says
// which of the two it was, so that an allowed debug quote is never reported as a production one.
void check_debug(const Verdict& verdict, const Policy& policy, CheckList& checks) {
    if (!verdict.dcap.ok()) return checks.skip(debug_check, "the quote did not verify");
    const auto& quote = verdict.dcap.report->quote;
    if (!tee::is_debug(quote)) return checks.pass(debug_check, quote.is_tdx() ? "not a debug TD" : "not a debug enclave");
    if (!policy.allow_debug)
        return checks.fail(debug_check, fmt::format("a debug {} is not accepted by the policy", quote.is_tdx() ? "TD" : "enclave"));
    checks.pass(debug_check, "debug (allowed by --allow-debug)");
}

void check_policy(const Verdict& verdict, const Policy& policy, CheckList& checks) {
    const auto& name = tcb_policy_check;
    if (!verdict.dcap.ok()) return checks.skip(name, "the quote did not verify");
    const auto& tcb = verdict.dcap.report->verdict;
    bool status_ok = std::find(policy.allowed_statuses.begin(), policy.allowed_statuses.end(), tcb.status) !=
                     policy.allowed_statuses.end();
    if (!status_ok)
        return checks.fail(name, fmt::format("TCB status {} is not accepted by the policy", tee::tcb_status_name(tcb.status)));
    bool any = std::find(policy.allowed_advisories.begin(), policy.allowed_advisories.end(), "*") != policy.allowed_advisories.end();
    for (const auto& advisory : tcb.advisory_ids) {
        bool allowed = any || std::find(policy.allowed_advisories.begin(), policy.allowed_advisories.end(), advisory) !=
                                  policy.allowed_advisories.end();
        if (!allowed) return checks.fail(name, fmt::format("advisory {} is not accepted by the policy", advisory));
    }
    checks.pass(name, verdict.relaxations.empty() ? "strict: UpToDate, no advisories" : "relaxed (see relaxations)");
}

}  // namespace

Verdict verify_evidence(const tee::Evidence& evidence, const tee::ParsedQuote& parsed, const tee::Collateral& collateral,
                        const tee::DcapOptions& options, const Policy& policy, const Expectations& expectations) {
    Verdict verdict;
    verdict.source = evidence.source;
    verdict.verified_at = options.now;
    verdict.relaxations = policy.relaxations();
    verdict.simulated = options.trust_anchor && options.trust_anchor->der() != tee::intel_sgx_root_ca().der();

    tee::DcapOptions dcap_options = options;
    dcap_options.allow_debug = policy.allow_debug;
    verdict.dcap = tee::verify_quote(parsed, collateral, dcap_options);
    verdict.checks = verdict.dcap.checks;
    CheckList checks(verdict.checks);

    // The body values: verified when DCAP passed, otherwise only parsed (the verdict is invalid then).
    if (parsed.quote) verdict.quote = *parsed.quote;
    const tee::Quote* quote = verdict.quote ? &*verdict.quote : nullptr;
    const tee::TdReport10* td = quote ? quote->td_report() : nullptr;

    if (td) {
        check_boot_rtmrs(evidence, *td, checks);
        auto runtime_events = runtime_events_of(evidence);
        bool rtmr3_verified = check_runtime_rtmr(evidence, runtime_events, *td, checks);
        auto identity = rtmr3_verified ? check_identity_events(runtime_events) : Result<bool>(false);
        if (rtmr3_verified && !identity) {
            checks.fail(app_identity_check, identity.error().message);
        } else if (rtmr3_verified && !*identity) {
            checks.skip(app_identity_check, "the runtime events carry no dstack identity (no app-id or compose-hash event)");
        } else if (rtmr3_verified) {
            ByteView ppid = verdict.dcap.ok() ? ByteView(verdict.dcap.report->ppid) : ByteView();
            verdict.app_info = decode_app_info(*td, runtime_events, ppid);
            checks.pass(app_identity_check, "from the replayed runtime events");
        } else {
            checks.skip(app_identity_check, "RTMR3 was not verified");
        }
    } else {
        std::string reason = quote ? "an SGX quote has no TD event log" : "the quote could not be parsed";
        checks.skip(boot_rtmrs_check, reason);
        checks.skip(runtime_rtmr_check, reason);
        checks.skip(app_identity_check, reason);
    }

    const CheckName binding_check{check_id::report_data, "report data matches the attestation"};
    const CheckName certificate_key_check{check_id::certificate_key, "certificate key bound to the quote"};
    const CheckName report_data_check{check_id::expected_report_data, "expected report data"};
    if (quote) {
        const auto& report_data = quote->report_data();
        if (evidence.report_data) checks.compare(binding_check, padded_report_data(*evidence.report_data), report_data);
        if (evidence.certificate_spki)
            checks.compare(certificate_key_check, report_data_for("ratls-cert", *evidence.certificate_spki), report_data);
    } else {
        if (evidence.report_data) checks.skip(binding_check, "the quote could not be parsed");
        if (evidence.certificate_spki) checks.skip(certificate_key_check, "the quote could not be parsed");
    }
    check_ratls_certificates(evidence.certificates, options.now, checks);
    if (expectations.report_data) {
        if (quote) checks.compare(report_data_check, padded_report_data(*expectations.report_data), quote->report_data());
        else checks.skip(report_data_check, "the quote could not be parsed");
    }

    auto expect_identity = [&](const CheckName& check, const std::optional<Bytes>& expected, const Bytes AppInfo::*field) {
        if (!expected) return;
        if (!verdict.app_info) return checks.fail(check, "no verified app identity (RTMR3 not verified)");
        checks.compare(check, *expected, (*verdict.app_info).*field);
    };
    expect_identity({check_id::expected_compose_hash, "expected compose hash"}, expectations.compose_hash, &AppInfo::compose_hash);
    expect_identity({check_id::expected_app_id, "expected app id"}, expectations.app_id, &AppInfo::app_id);
    if (expectations.os_image_hash) {
        // The event is what the booted OS says about itself; only the image's measurement
        // (MRTD, RTMR0-2 computed from it) would tie the hash to what actually booted.
        expect_identity({check_id::expected_os_image_hash_event, "expected os-image-hash event (RTMR3)"},
                        expectations.os_image_hash, &AppInfo::os_image_hash);
        checks.skip({check_id::os_image_measurement, "OS image measurement"},
                    "MRTD and RTMR0-2 were not computed from the OS image (this verifier does not measure OS images yet): "
                    "--os-image-hash was compared with the os-image-hash event only, which the booted OS writes itself");
    }

    auto expect_measurement = [&](const CheckName& check, const std::optional<Bytes>& expected, const tee::Fixed<48>* actual) {
        if (!expected) return;
        if (!actual) return checks.fail(check, quote ? "the quote has no TD report" : "the quote could not be parsed");
        checks.compare(check, *expected, *actual);
    };
    expect_measurement({check_id::expected_mrtd, "expected MRTD"}, expectations.mrtd, td ? &td->mr_td : nullptr);
    const tee::Fixed<48>* rtmrs[3] = {td ? &td->rt_mr0 : nullptr, td ? &td->rt_mr1 : nullptr, td ? &td->rt_mr2 : nullptr};
    for (int i = 0; i < 3; ++i)
        expect_measurement({check_id::expected_rtmr[i], fmt::format("expected RTMR{}", i)}, expectations.rtmr[i], rtmrs[i]);

    check_debug(verdict, policy, checks);
    check_policy(verdict, policy, checks);

    // Details quote hostile input (PEM labels, names): keep every output printable and valid UTF-8.
    for (auto& check : verdict.checks) check.detail = printable_text(check.detail);
    for (auto& check : verdict.dcap.checks) check.detail = printable_text(check.detail);
    if (verdict.dcap.error) verdict.dcap.error->message = printable_text(verdict.dcap.error->message);

    auto first_failure = std::find_if(verdict.checks.begin(), verdict.checks.end(),
                                      [](const Check& c) { return c.state == CheckState::failed; });
    verdict.valid = verdict.dcap.ok() && first_failure == verdict.checks.end();
    if (first_failure != verdict.checks.end())
        verdict.reason = fmt::format("{}: {}", first_failure->name, first_failure->detail);
    else if (!verdict.valid)
        verdict.reason = verdict.dcap.error ? verdict.dcap.error->message : "the quote did not verify";
    return verdict;
}

Verdict verify_evidence(const tee::Evidence& evidence, const tee::Collateral& collateral, const tee::DcapOptions& options,
                        const Policy& policy, const Expectations& expectations) {
    return verify_evidence(evidence, tee::ParsedQuote(evidence.quote), collateral, options, policy, expectations);
}

}  // namespace dstack::app
