// The text verdict: the answer first, then what it rests on, then every check.
#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {
namespace {

std::string status_line(const app::Verdict& verdict) {
    if (!verdict.dcap.ok()) return "not established (the quote did not verify)";
    const auto& tcb = verdict.dcap.report->verdict;
    return std::string(tee::tcb_status_name(tcb.status));
}

std::string advisories_line(const app::Verdict& verdict) {
    if (!verdict.dcap.ok()) return "-";
    const auto& ids = verdict.dcap.report->verdict.advisory_ids;
    if (ids.empty()) return "none";
    std::string out;
    for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
    return out;
}

// When only the TCB policy failed: the flags that would accept this platform, so that accepting
// it is a deliberate, visible choice.
std::string policy_hint(const app::Verdict& verdict) {
    if (!verdict.dcap.ok()) return {};
    bool policy_failed = false;
    for (const auto& check : verdict.checks) {
        if (check.state != tee::CheckState::failed) continue;
        if (check.id != app::check_id::tcb_policy) return {};
        policy_failed = true;
    }
    if (!policy_failed) return {};
    const auto& tcb = verdict.dcap.report->verdict;
    std::string flags;
    if (tcb.status != tee::TcbStatus::up_to_date) flags += fmt::format("--allow-status {}", tee::tcb_status_name(tcb.status));
    for (const auto& id : tcb.advisory_ids) flags += fmt::format("{}--allow-advisory {}", flags.empty() ? "" : " ", id);
    return flags;
}

}  // namespace

std::string render_verdict(const app::Verdict& verdict) {
    std::string out;
    std::string simulated = verdict.simulated ? " SIMULATED (not a real TEE: verified against a test root CA)" : "";
    out += fmt::format("{}{}\n", verdict.valid ? "VALID" : "INVALID", simulated);
    if (!verdict.valid) out += fmt::format("  reason:       {}\n", verdict.reason);
    if (auto hint = policy_hint(verdict); !hint.empty()) out += fmt::format("  to accept:    {}\n", hint);
    out += fmt::format("  input:        {}\n", verdict.source);
    out += fmt::format("  verified at:  {}\n", format_rfc3339(verdict.verified_at));
    if (verdict.quote) {
        const auto& quote = *verdict.quote;
        out += fmt::format("  quote:        {} v{}{}\n", quote.is_tdx() ? "TDX" : "SGX", quote.header.version,
                           std::holds_alternative<tee::TdReport15>(quote.body) ? " (TD 1.5)" : "");
    }
    out += fmt::format("  TCB status:   {}\n", status_line(verdict));
    out += fmt::format("  advisories:   {}\n", advisories_line(verdict));
    if (verdict.relaxations.empty()) {
        out += "  policy:       strict (UpToDate, no advisories, no debug)\n";
    } else {
        out += "  policy:       RELAXED:";
        for (const auto& relaxation : verdict.relaxations) out += fmt::format(" {};", relaxation);
        out += "\n";
    }
    if (verdict.quote) {
        if (const auto* td = verdict.quote->td_report()) {
            out += fmt::format("  MRTD:         {}\n", hex_encode(td->mr_td));
            out += fmt::format("  report data:  {}\n", hex_encode(td->report_data));
        } else if (const auto* enclave = verdict.quote->enclave_report()) {
            out += fmt::format("  MRENCLAVE:    {}\n", hex_encode(enclave->mr_enclave));
            out += fmt::format("  MRSIGNER:     {}\n", hex_encode(enclave->mr_signer));
            out += fmt::format("  report data:  {}\n", hex_encode(enclave->report_data));
        }
    }
    if (verdict.app_info) {
        const auto& info = *verdict.app_info;
        out += "  app identity:\n";
        auto line = [&](std::string_view name, const Bytes& value) {
            out += fmt::format("    {:<18}{}\n", name, value.empty() ? std::string("-") : hex_encode(value));
        };
        line("app id", info.app_id);
        line("compose hash", info.compose_hash);
        line("instance id", info.instance_id);
        line("OS image hash", info.os_image_hash);
        line("device id", info.device_id);
        line("mr_system", info.mr_system);
        line("mr_aggregated", info.mr_aggregated);
        out += fmt::format("    {:<18}{}\n", "key provider",
                           info.key_provider_info.empty() ? std::string("-") : json_escape(as_chars(info.key_provider_info)));
    }
    out += "checks:\n";
    for (const auto& check : verdict.checks) {
        out += fmt::format("  {:<12} {}", tee::check_state_name(check.state), check.name);
        if (!check.detail.empty()) out += fmt::format(": {}", check.detail);
        out += "\n";
    }
    return out;
}

}  // namespace dstack::applets::verify
