// The verify applet's --json output: the verdict, the DCAP result (with dcap-qvl's report), the
// identity values and every check.
#include "dstack/app/verdict.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-writer.hpp"

namespace dstack::app {
namespace {

using JsonWriter = json::Writer;
using json::hex;
using json::key;
using json::string;
using json::string_or_null;
using json::strings;

void write_quote(JsonWriter& out, const tee::Quote& quote) {
    out.StartObject();
    key(out, "version");
    out.Uint(quote.header.version);
    key(out, "tee");
    string(out, quote.is_tdx() ? "TDX" : "SGX");
    key(out, "body");
    string(out, std::holds_alternative<tee::TdReport15>(quote.body) ? "TD15"
                : std::holds_alternative<tee::TdReport10>(quote.body) ? "TD10" : "SgxEnclave");
    if (const auto* td = quote.td_report()) {
        hex(out, "mr_td", td->mr_td);
        hex(out, "rt_mr0", td->rt_mr0);
        hex(out, "rt_mr1", td->rt_mr1);
        hex(out, "rt_mr2", td->rt_mr2);
        hex(out, "rt_mr3", td->rt_mr3);
        hex(out, "mr_config_id", td->mr_config_id);
        hex(out, "td_attributes", td->td_attributes);
        hex(out, "tee_tcb_svn", td->tee_tcb_svn);
    } else if (const auto* enclave = quote.enclave_report()) {
        hex(out, "mr_enclave", enclave->mr_enclave);
        hex(out, "mr_signer", enclave->mr_signer);
    }
    hex(out, "report_data", quote.report_data());
    out.EndObject();
}

}  // namespace

std::string verdict_json(const Verdict& verdict) {
    rapidjson::StringBuffer buffer;
    JsonWriter out(buffer);
    const auto& dcap = verdict.dcap;
    std::optional<std::string> status;
    std::vector<std::string> advisories;
    if (dcap.ok()) {
        status = std::string(tee::tcb_status_name(dcap.report->verdict.status));
        advisories = dcap.report->verdict.advisory_ids;
    }

    out.StartObject();
    key(out, "verdict");
    string(out, verdict.valid ? "VALID" : "INVALID");
    key(out, "simulated");
    out.Bool(verdict.simulated);
    key(out, "reason");
    string_or_null(out, verdict.valid ? std::nullopt : std::optional<std::string>(verdict.reason));
    key(out, "input");
    string(out, verdict.source);
    key(out, "verified_at");
    string(out, format_rfc3339(verdict.verified_at));
    key(out, "quote");
    if (verdict.quote) write_quote(out, *verdict.quote);
    else out.Null();
    key(out, "tcb_status");
    string_or_null(out, status);
    key(out, "advisory_ids");
    strings(out, advisories);
    key(out, "relaxations");
    strings(out, verdict.relaxations);

    key(out, "dcap");
    out.StartObject();
    key(out, "verified");
    out.Bool(dcap.ok());
    key(out, "status");
    string_or_null(out, status);
    key(out, "advisory_ids");
    strings(out, advisories);
    key(out, "error");
    string_or_null(out, dcap.error ? std::optional<std::string>(dcap.error->message) : std::nullopt);
    key(out, "report");
    if (dcap.ok()) {
        auto report = tee::dcap_report_json(*dcap.report);
        out.RawValue(report.data(), report.size(), rapidjson::kObjectType);
    } else {
        out.Null();
    }
    out.EndObject();

    key(out, "app_info");
    if (verdict.app_info) {
        auto info = app_info_json(*verdict.app_info);
        out.RawValue(info.data(), info.size(), rapidjson::kObjectType);
    } else {
        out.Null();
    }

    key(out, "checks");
    auto checks = checks_json(verdict.checks);
    out.RawValue(checks.data(), checks.size(), rapidjson::kArrayType);
    out.EndObject();
    return buffer.GetString();
}

std::string checks_json(const std::vector<tee::Check>& checks) {
    rapidjson::StringBuffer buffer;
    JsonWriter out(buffer);
    out.StartArray();
    for (const auto& check : checks) {
        out.StartObject();
        key(out, "id");
        string(out, check.id);
        key(out, "name");
        string(out, check.name);
        key(out, "state");
        string(out, tee::check_state_name(check.state));
        key(out, "detail");
        string(out, check.detail);
        out.EndObject();
    }
    out.EndArray();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string app_info_json(const AppInfo& info) {
    rapidjson::StringBuffer buffer;
    JsonWriter out(buffer);
    out.StartObject();
    hex(out, "app_id", info.app_id);
    hex(out, "compose_hash", info.compose_hash);
    hex(out, "instance_id", info.instance_id);
    hex(out, "device_id", info.device_id);
    hex(out, "mr_system", info.mr_system);
    hex(out, "mr_aggregated", info.mr_aggregated);
    hex(out, "os_image_hash", info.os_image_hash);
    hex(out, "key_provider_info", info.key_provider_info);
    key(out, "init_script_hashes");
    out.StartArray();
    for (const auto& hash : info.init_script_hashes) string(out, hex_encode(hash));
    out.EndArray();
    out.EndObject();
    return buffer.GetString();
}

}  // namespace dstack::app
