// POST /verify: upstream's VerificationRequest in, VerificationResponse out. Every detail this
// verifier did not establish itself is reported false or null, never passed.
#include "serve-api.hpp"

#include <algorithm>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/json-writer.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::applets::verify {
namespace {

// Requests and key-provider payloads are flat objects; the depth limit leaves room for unknown fields.
constexpr json::ReadLimits request_limits{max_request_body, 8};
// A key-provider payload is {"name":"kms","id":"<hex>"}: tens of bytes.
constexpr json::ReadLimits key_provider_limits{64 * 1024, 8};

Result<std::optional<std::string>> optional_string(const json::Object& object, std::string_view key) {
    auto value = object.optional(key);
    if (!value) return std::optional<std::string>{};
    DSTACK_TRY(auto text, value->string());
    return std::optional<std::string>(std::move(text));
}

Result<VerificationRequest> read_verification_request(std::string_view body) {
    DSTACK_TRY(auto document, json::read_json(body, request_limits));
    DSTACK_TRY(auto object, document.root().object());
    VerificationRequest request;
    DSTACK_TRY(request.quote, optional_string(object, "quote"));
    DSTACK_TRY(request.event_log, optional_string(object, "event_log"));
    DSTACK_TRY(request.vm_config, optional_string(object, "vm_config"));
    DSTACK_TRY(request.attestation, optional_string(object, "attestation"));
    if (auto debug = object.optional("debug")) {
        DSTACK_TRY(request.debug, debug->boolean());
    }
    return request;
}

using JsonWriter = json::Writer;
using json::hex;
using json::key;
using json::string;
using json::strings;

const tee::Check* find_check(const app::Verdict& verdict, std::string_view id) { return tee::find_check(verdict.checks, id); }
bool failed(const tee::Check* check) { return check && check->state == tee::CheckState::failed; }

constexpr std::string_view rtmr3_check = app::check_id::runtime_rtmr;
constexpr std::string_view boot_rtmrs_check = app::check_id::boot_rtmrs;
constexpr std::string_view binding_check = app::check_id::report_data;
constexpr std::string_view policy_checks[] = {app::check_id::debug, app::check_id::tcb_policy};

bool event_log_verified(const app::Verdict& verdict) {
    const auto* rtmr3 = find_check(verdict, rtmr3_check);
    return rtmr3 && rtmr3->state == tee::CheckState::passed && !failed(find_check(verdict, boot_rtmrs_check));
}

// The first reason in upstream's order of steps: the quote (DCAP, its binding to the attestation,
// the TCB policy), the event log, then the OS image. Empty when valid.
std::string reason_for(const app::Verdict& verdict, const ResponseSettings& settings) {
    if (!verdict.dcap.ok())
        return fmt::format("Quote verification failed: {}",
                           verdict.dcap.error ? verdict.dcap.error->message : std::string("the quote did not verify"));
    if (const auto* check = find_check(verdict, binding_check); failed(check))
        return fmt::format("Quote verification failed: report_data mismatch: {}", check->detail);
    for (auto id : policy_checks) {
        if (const auto* check = find_check(verdict, id); failed(check))
            return fmt::format("Quote verification failed: {}", check->detail);
    }
    for (auto name : {boot_rtmrs_check, rtmr3_check}) {
        if (const auto* check = find_check(verdict, name); failed(check))
            return fmt::format("Event log verification failed: {}", check->detail);
    }
    if (!event_log_verified(verdict)) {
        const auto* rtmr3 = find_check(verdict, rtmr3_check);
        return fmt::format("Event log verification failed: {}", rtmr3 ? rtmr3->detail : std::string("RTMR3 was not verified"));
    }
    if (!verdict.valid) return fmt::format("Quote verification failed: {}", verdict.reason);
    if ((settings.simulated || verdict.simulated) && !settings.accept_simulated) return std::string(simulated_reason);
    if (!settings.skip_os_image) return std::string(os_image_not_verified_reason);
    return {};
}

// The key-provider event's payload is JSON {"name": ..., "id": ...}; anything else (a key given
// twice included) is no key provider.
struct KeyProvider {
    std::string name;
    std::string id;
};
std::optional<KeyProvider> key_provider_of(const app::AppInfo& info) {
    if (info.key_provider_info.empty()) return std::nullopt;
    auto document = json::read_json(as_chars(info.key_provider_info), key_provider_limits);
    if (!document) return std::nullopt;
    auto object = document->root().object();
    if (!object) return std::nullopt;
    auto name = object->string("name");
    auto id = object->string("id");
    if (!name || !id) return std::nullopt;
    return KeyProvider{std::move(*name), std::move(*id)};
}

void write_boot_info(JsonWriter& out, const app::AppInfo& info, std::string_view tee_variant, std::string_view tcb_status,
                     const std::vector<std::string>& advisory_ids) {
    out.StartObject();
    key(out, "teeVariant");
    string(out, tee_variant);
    hex(out, "mrAggregated", info.mr_aggregated);
    hex(out, "osImageHash", info.os_image_hash);
    hex(out, "mrSystem", info.mr_system);
    hex(out, "appId", info.app_id);
    hex(out, "composeHash", info.compose_hash);
    hex(out, "instanceId", info.instance_id);
    hex(out, "deviceId", info.device_id);
    hex(out, "keyProviderInfo", info.key_provider_info);
    key(out, "tcbStatus");
    string(out, tcb_status);
    key(out, "advisoryIds");
    strings(out, advisory_ids);
    out.EndObject();
}

// What upstream's details start as: nothing verified.
struct Details {
    bool quote_verified = false;
    bool event_log_verified = false;
    std::optional<std::string> tee_variant;
    std::optional<std::string> report_data;
    std::optional<std::string> tcb_status;
    std::vector<std::string> advisory_ids;
    std::optional<KeyProvider> key_provider;
    const app::AppInfo* app_info = nullptr;
    bool boot_info = false;
};

std::string response_json(bool is_valid, std::string_view reason, const Details& details, bool simulated,
                          const std::vector<tee::Check>& checks) {
    rapidjson::StringBuffer buffer;
    JsonWriter out(buffer);
    auto optional = [&out](std::string_view name, const std::optional<std::string>& value) {
        key(out, name);
        if (value) string(out, *value);
        else out.Null();
    };
    out.StartObject();
    key(out, "is_valid");
    out.Bool(is_valid);
    key(out, "reason");
    if (reason.empty()) out.Null();
    else string(out, reason);
    key(out, "details");
    out.StartObject();
    key(out, "quote_verified");
    out.Bool(details.quote_verified);
    key(out, "event_log_verified");
    out.Bool(details.event_log_verified);
    // Neither the OS image nor the ACPI tables are measured by this verifier.
    key(out, "os_image_hash_verified");
    out.Bool(false);
    key(out, "acpi_tables_verified");
    out.Bool(false);
    key(out, "os_image_is_dev");
    out.Null();
    key(out, "os_image_version");
    out.Null();
    optional("tee_variant", details.tee_variant);
    optional("report_data", details.report_data);
    optional("tcb_status", details.tcb_status);
    key(out, "advisory_ids");
    strings(out, details.advisory_ids);
    key(out, "key_provider");
    if (details.key_provider) {
        out.StartObject();
        key(out, "name");
        string(out, details.key_provider->name);
        key(out, "id");
        string(out, details.key_provider->id);
        out.EndObject();
    } else {
        out.Null();
    }
    key(out, "app_info");
    if (details.app_info) {
        auto info = app::app_info_json(*details.app_info);
        out.RawValue(info.data(), info.size(), rapidjson::kObjectType);
    } else {
        out.Null();
    }
    if (details.boot_info && details.app_info && details.tee_variant && details.tcb_status) {
        key(out, "boot_info");
        write_boot_info(out, *details.app_info, *details.tee_variant, *details.tcb_status, details.advisory_ids);
    }
    out.EndObject();
    key(out, "simulated");
    out.Bool(simulated);
    key(out, "checks");
    auto checks_text = app::checks_json(checks);
    out.RawValue(checks_text.data(), checks_text.size(), rapidjson::kArrayType);
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

Result<VerificationRequest> parse_verification_request(std::string_view body) {
    auto request = read_verification_request(body);
    if (!request) return std::move(request).take_error().context("invalid request");
    return request;
}

Result<tee::Evidence> evidence_from_request(const VerificationRequest& request) {
    if (request.attestation) {
        auto bytes = hex_decode(*request.attestation);
        if (!bytes) return std::move(bytes).take_error().context("Failed to decode attestation hex");
        if (bytes->size() > tee::max_attestation_size)
            return make_error("attestation: {} bytes, at most {} accepted", bytes->size(), tee::max_attestation_size);
        // Upstream's VersionedAttestation::from_bytes: 0x00 is V0 (SCALE), a MessagePack map V1.
        bool v1 = !bytes->empty() && (((*bytes)[0] & 0xf0) == 0x80 || (*bytes)[0] == 0xde || (*bytes)[0] == 0xdf);
        auto evidence = v1 ? tee::parse_v1_attestation(*bytes) : tee::parse_v0_attestation(*bytes);
        if (!evidence) return std::move(evidence).take_error().context("Failed to decode attestation");
        return evidence;
    }
    if (!request.quote) return make_error("Quote is required");
    if (!request.event_log) return make_error("Event log is required");
    auto quote = hex_decode(*request.quote);
    if (!quote) return std::move(quote).take_error().context("Failed to decode quote hex");
    if (quote->size() > tee::max_quote_size)
        return make_error("quote: {} bytes, at most {} accepted", quote->size(), tee::max_quote_size);
    auto events = tee::parse_event_log_json(*request.event_log);
    if (!events) return std::move(events).take_error().context("Failed to parse event log");

    tee::Evidence evidence;
    // Upstream makes the quote's report data the attestation's; comparing the two would be a check
    // that cannot fail, so none is made (and the quote is parsed once, by the verification).
    evidence.quote = std::move(*quote);
    evidence.event_log = std::move(*events);
    evidence.vm_config = request.vm_config;
    evidence.source = "verification request (quote and event log)";
    return evidence;
}

std::string verification_response_json(const app::Verdict& verdict, const ResponseSettings& settings) {
    Details details;
    details.quote_verified = verdict.dcap.ok();
    details.event_log_verified = event_log_verified(verdict);
    if (verdict.dcap.ok()) {
        const auto& report = *verdict.dcap.report;
        if (report.quote.is_tdx()) details.tee_variant = "dstack-tdx";
        details.report_data = hex_encode(report.quote.report_data());
        details.tcb_status = std::string(tee::tcb_status_name(report.verdict.status));
        details.advisory_ids = report.verdict.advisory_ids;
    }
    if (verdict.app_info && details.event_log_verified) {
        details.app_info = &*verdict.app_info;
        details.key_provider = key_provider_of(*verdict.app_info);
    }
    std::string reason = reason_for(verdict, settings);
    bool is_valid = reason.empty();
    details.boot_info = is_valid;
    return response_json(is_valid, reason, details, settings.simulated || verdict.simulated, verdict.checks);
}

std::string failure_response_json(std::string_view reason, const ResponseSettings& settings) {
    return response_json(false, reason, Details{}, settings.simulated, {});
}

}  // namespace dstack::applets::verify
