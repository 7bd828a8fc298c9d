// App identity from a TD report and its runtime events (upstream's decode_app_info_ex): the values
// KMS policies and relying parties key on.
#include "dstack/app/identity.hpp"

#include <algorithm>

#include "dstack/app/report-data.hpp"
#include "dstack/crypto/hash.hpp"

namespace dstack::app {
namespace {

constexpr std::string_view system_ready = "system-ready";
constexpr std::string_view boot_mr_done = "boot-mr-done";

// Runtime events up to (not including) system-ready: what the dstack guest itself measured
// before handing the CVM to the app, which can append events of any name afterwards.
template <typename Visit>
void for_each_system_event(const std::vector<tee::TdxEvent>& runtime_events, Visit visit) {
    for (const auto& event : runtime_events) {
        if (event.event_type != tee::runtime_event_type) continue;
        if (event.event == system_ready) return;
        if (!visit(event)) return;
    }
}

bool all_zero(ByteView bytes) {
    for (auto b : bytes) {
        if (b != 0) return false;
    }
    return true;
}

}  // namespace

std::optional<Bytes> find_runtime_event(const std::vector<tee::TdxEvent>& runtime_events, std::string_view name) {
    std::optional<Bytes> found;
    for_each_system_event(runtime_events, [&](const tee::TdxEvent& event) {
        if (event.event != name) return true;
        found = event.event_payload;
        return false;
    });
    return found;
}

Result<bool> check_identity_events(const std::vector<tee::TdxEvent>& runtime_events) {
    struct Rule {
        std::string_view name;
        bool required;
        std::vector<std::size_t> sizes;  // empty: any size
        int seen = 0;
    };
    Rule rules[] = {
        {"app-id", true, {20}},          {"compose-hash", true, {32}}, {"instance-id", false, {0, 20}},
        {"os-image-hash", false, {}},    {"key-provider", false, {}},  {"boot-mr-done", false, {0}},
        {"storage-fs", false, {}},
    };
    std::optional<Error> problem;
    for_each_system_event(runtime_events, [&](const tee::TdxEvent& event) {
        for (auto& rule : rules) {
            if (event.event != rule.name) continue;
            if (++rule.seen > 1) problem = make_error("the runtime events hold '{}' more than once", rule.name);
            else if (!rule.sizes.empty() &&
                     std::find(rule.sizes.begin(), rule.sizes.end(), event.event_payload.size()) == rule.sizes.end())
                problem = make_error("the '{}' event holds {} bytes, not {}", rule.name, event.event_payload.size(), rule.sizes.back());
        }
        return !problem;
    });
    if (problem) return *problem;
    bool any = std::any_of(std::begin(rules), std::end(rules), [](const Rule& rule) { return rule.seen > 0; });
    if (!any) return false;
    for (const auto& rule : rules)
        if (rule.required && rule.seen == 0) return make_error("the runtime events hold no '{}' event", rule.name);
    return true;
}

AppInfo decode_app_info(const tee::TdReport10& report, const std::vector<tee::TdxEvent>& runtime_events, ByteView ppid,
                        bool boot_time) {
    AppInfo info;
    info.app_id = find_runtime_event(runtime_events, "app-id").value_or(Bytes{});
    info.compose_hash = find_runtime_event(runtime_events, "compose-hash").value_or(Bytes{});
    info.instance_id = find_runtime_event(runtime_events, "instance-id").value_or(Bytes{});
    info.os_image_hash = find_runtime_event(runtime_events, "os-image-hash").value_or(Bytes{});
    if (!boot_time) info.key_provider_info = find_runtime_event(runtime_events, "key-provider").value_or(Bytes{});
    for_each_system_event(runtime_events, [&](const tee::TdxEvent& event) {
        if (event.event == "init-script-hash") info.init_script_hashes.push_back(event.event_payload);
        return true;
    });

    Bytes mr_key_provider =
        info.key_provider_info.empty() ? Bytes(32, 0) : crypto::sha256(info.key_provider_info);
    info.mr_system = crypto::sha256(
        concat({report.mr_td, report.rt_mr0, report.rt_mr1, report.rt_mr2, mr_key_provider}));

    // RTMR3 as replayed, not as quoted: the caller has checked the two agree (or, at boot time,
    // that the replay up to boot-mr-done is what it expects).
    auto rtmr3 = tee::replay_runtime_events(runtime_events,
                                            boot_time ? std::optional<std::string_view>(boot_mr_done) : std::nullopt);
    Bytes aggregate = concat({report.mr_td, report.rt_mr0, report.rt_mr1, report.rt_mr2, rtmr3});
    // Only CVMs that set the owner-controlled fields get them folded in, so older ids stay stable.
    if (!all_zero(report.mr_config_id) || !all_zero(report.mr_owner) || !all_zero(report.mr_owner_config)) {
        aggregate = concat({aggregate, report.mr_config_id, report.mr_owner, report.mr_owner_config});
    }
    info.mr_aggregated = crypto::sha256(aggregate);
    info.device_id = crypto::sha256(ppid);
    return info;
}

Bytes compose_hash(ByteView app_compose_json) { return crypto::sha256(app_compose_json); }

Bytes report_data_for(std::string_view tag, ByteView content) {
    // sha512 fills all 64 bytes and is always a known algorithm.
    auto report_data = report_data_with_hash(tag, content, "sha512");
    return {report_data->begin(), report_data->end()};
}

}  // namespace dstack::app
