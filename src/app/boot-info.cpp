// BootInfo and its upstream JSON form (verifier/src/types.rs::PolicyBootInfo, serde camelCase,
// bytes through serde_human_bytes: bare lowercase hex).
#include "dstack/app/boot-info.hpp"

#include "dstack/base/json-writer.hpp"

namespace dstack::app {

BootInfo make_boot_info(const AppInfo& info, const tee::TcbVerdict& verdict, std::string tee_variant) {
    BootInfo boot;
    boot.tee_variant = std::move(tee_variant);
    boot.mr_aggregated = info.mr_aggregated;
    boot.os_image_hash = info.os_image_hash;
    boot.mr_system = info.mr_system;
    boot.app_id = info.app_id;
    boot.compose_hash = info.compose_hash;
    boot.instance_id = info.instance_id;
    boot.device_id = info.device_id;
    boot.key_provider_info = info.key_provider_info;
    boot.tcb_status = std::string(tee::tcb_status_name(verdict.status));
    boot.advisory_ids = verdict.advisory_ids;
    return boot;
}

std::string boot_info_json(const BootInfo& info) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "teeVariant");
    json::string(out, info.tee_variant);
    json::hex(out, "mrAggregated", info.mr_aggregated);
    json::hex(out, "osImageHash", info.os_image_hash);
    json::hex(out, "mrSystem", info.mr_system);
    json::hex(out, "appId", info.app_id);
    json::hex(out, "composeHash", info.compose_hash);
    json::hex(out, "instanceId", info.instance_id);
    json::hex(out, "deviceId", info.device_id);
    json::hex(out, "keyProviderInfo", info.key_provider_info);
    json::key(out, "tcbStatus");
    json::string(out, info.tcb_status);
    json::key(out, "advisoryIds");
    json::strings(out, info.advisory_ids);
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace dstack::app
