// From evidence to one verdict. DCAP first (its checks lead the list); then what only a dstack
// verifier knows: the event log replayed into the quote's RTMRs, the report-data binding, the
// identity values, the caller's expectations, and the TCB policy. A check whose inputs are absent
// is "not checked" with the reason, never passed.
#include "dstack/app/verdict.hpp"

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

class CheckList {
public:
    explicit CheckList(std::vector<Check>& checks) : checks_(checks) {}
    void pass(std::string name, std::string detail = {}) { checks_.push_back({std::move(name), CheckState::passed, std::move(detail)}); }
    void fail(std::string name, std::string detail) { checks_.push_back({std::move(name), CheckState::failed, std::move(detail)}); }
    void skip(std::string name, std::string reason) { checks_.push_back({std::move(name), CheckState::not_checked, std::move(reason)}); }
    // passed when equal, failed with both values otherwise.
    void compare(std::string name, ByteView expected, ByteView actual) {
        if (std::equal(expected.begin(), expected.end(), actual.begin(), actual.end()))
            pass(std::move(name), hex_encode(actual));
        else
            fail(std::move(name), fmt::format("expected {}, got {}", hex_encode(expected), hex_encode(actual)));
    }

private:
    std::vector<Check>& checks_;
};

std::vector<tee::TdxEvent> runtime_events_of(const tee::Evidence& evidence) {
    if (evidence.runtime_events) return *evidence.runtime_events;
    std::vector<tee::TdxEvent> events;
    for (const auto& event : evidence.event_log)
        if (event.event_type == tee::runtime_event_type) events.push_back(event);
    return events;
}

void check_boot_rtmrs(const tee::Evidence& evidence, const tee::TdReport10& td, CheckList& checks) {
    const std::string name = "event log replays RTMR0-2";
    if (evidence.event_log.empty()) return checks.skip(name, "the input carries no event log");
    std::vector<const tee::TdxEvent*> boot_events;
    for (const auto& event : evidence.event_log)
        if (event.imr < 3) boot_events.push_back(&event);
    if (boot_events.empty()) return checks.skip(name, "the event log holds no boot-time (RTMR0-2) events");
    // Certificates and V0 attestations carry the stripped log: of the boot events only the three
    // ACPI ones of RTMR0 remain (the runtime events' digests are emptied: they are recomputed).
    bool only_acpi = std::all_of(boot_events.begin(), boot_events.end(), [](const tee::TdxEvent* e) {
        return e->event_type == 10 && std::string_view(as_chars(e->event_payload)) == "ACPI DATA";
    });
    bool digests_missing = std::any_of(boot_events.begin(), boot_events.end(),
                                       [](const tee::TdxEvent* e) { return e->digest.size() != 48; });
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
    const std::string name = "runtime events replay RTMR3";
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

void check_policy(const Verdict& verdict, const Policy& policy, CheckList& checks) {
    const std::string name = "TCB policy";
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

Verdict verify_evidence(const tee::Evidence& evidence, const tee::Collateral& collateral, const tee::DcapOptions& options,
                        const Policy& policy, const Expectations& expectations) {
    Verdict verdict;
    verdict.source = evidence.source;
    verdict.verified_at = options.now;
    verdict.relaxations = policy.relaxations();
    verdict.simulated = options.trust_anchor && options.trust_anchor->der() != tee::intel_sgx_root_ca().der();

    tee::DcapOptions dcap_options = options;
    dcap_options.allow_debug = policy.allow_debug;
    verdict.dcap = tee::verify_quote(evidence.quote, collateral, dcap_options);
    verdict.checks = verdict.dcap.checks;
    CheckList checks(verdict.checks);

    // The body values: verified when DCAP passed, otherwise only parsed (the verdict is invalid then).
    std::optional<tee::Quote> quote;
    if (verdict.dcap.ok()) {
        quote = verdict.dcap.report->quote;
    } else if (auto parsed = tee::parse_quote(evidence.quote)) {
        quote = std::move(*parsed);
    }
    const tee::TdReport10* td = quote ? quote->td_report() : nullptr;
    verdict.quote = quote;

    if (td) {
        check_boot_rtmrs(evidence, *td, checks);
        auto runtime_events = runtime_events_of(evidence);
        bool rtmr3_verified = check_runtime_rtmr(evidence, runtime_events, *td, checks);
        if (rtmr3_verified) {
            ByteView ppid = verdict.dcap.ok() ? ByteView(verdict.dcap.report->ppid) : ByteView();
            verdict.app_info = decode_app_info(*td, runtime_events, ppid);
            checks.pass("app identity", "from the replayed runtime events");
        } else {
            checks.skip("app identity", "RTMR3 was not verified");
        }
    } else {
        std::string reason = quote ? "an SGX quote has no TD event log" : "the quote could not be parsed";
        checks.skip("event log replays RTMR0-2", reason);
        checks.skip("runtime events replay RTMR3", reason);
        checks.skip("app identity", reason);
    }

    if (quote) {
        const auto& report_data = quote->report_data();
        if (evidence.report_data)
            checks.compare("report data matches the attestation", padded_report_data(*evidence.report_data), report_data);
        if (evidence.certificate_spki)
            checks.compare("certificate key bound to the quote", report_data_for("ratls-cert", *evidence.certificate_spki),
                           report_data);
        if (expectations.report_data) checks.compare("expected report data", padded_report_data(*expectations.report_data), report_data);
    } else if (expectations.report_data) {
        checks.skip("expected report data", "the quote could not be parsed");
    }

    auto expect_identity = [&](std::string name, const std::optional<Bytes>& expected, const Bytes AppInfo::*field) {
        if (!expected) return;
        if (!verdict.app_info) return checks.fail(std::move(name), "no verified app identity (RTMR3 not verified)");
        checks.compare(std::move(name), *expected, (*verdict.app_info).*field);
    };
    expect_identity("expected compose hash", expectations.compose_hash, &AppInfo::compose_hash);
    expect_identity("expected app id", expectations.app_id, &AppInfo::app_id);
    expect_identity("expected OS image hash", expectations.os_image_hash, &AppInfo::os_image_hash);

    auto expect_measurement = [&](std::string name, const std::optional<Bytes>& expected, const tee::Fixed<48>* actual) {
        if (!expected) return;
        if (!actual) return checks.fail(std::move(name), "the quote has no TD report");
        checks.compare(std::move(name), *expected, *actual);
    };
    expect_measurement("expected MRTD", expectations.mrtd, td ? &td->mr_td : nullptr);
    expect_measurement("expected RTMR0", expectations.rtmr[0], td ? &td->rt_mr0 : nullptr);
    expect_measurement("expected RTMR1", expectations.rtmr[1], td ? &td->rt_mr1 : nullptr);
    expect_measurement("expected RTMR2", expectations.rtmr[2], td ? &td->rt_mr2 : nullptr);

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

}  // namespace dstack::app
