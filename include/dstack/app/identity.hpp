// What a dstack CVM is, derived from a verified quote and its replayed runtime events: app id,
// compose hash, instance id, key provider, OS image hash, and the aggregate measurements
// (mr_system, mr_aggregated, device_id) that KMS policies use.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/tee/eventlog.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::app {

struct AppInfo {
    Bytes app_id;
    Bytes compose_hash;
    Bytes instance_id;
    Bytes device_id;
    Bytes mr_system;
    Bytes mr_aggregated;
    Bytes os_image_hash;
    Bytes key_provider_info;
    std::vector<Bytes> init_script_hashes;
};

// Payload of the first event with this name before "system-ready".
std::optional<Bytes> find_runtime_event(const std::vector<tee::TdxEvent>& runtime_events, std::string_view name);

// The identity events dstack's guest measures before system-ready, checked before they are
// believed: app-id (20 bytes) and compose-hash (32 bytes) exactly once; instance-id (empty or 20
// bytes), os-image-hash, key-provider, boot-mr-done and storage-fs at most once. A log that could
// name two compose hashes names none. false: no identity events at all (not a dstack CVM's log).
Result<bool> check_identity_events(const std::vector<tee::TdxEvent>& runtime_events);

// As upstream's decode_app_info_ex: `ppid` from the verified PCK certificate (empty when
// unverified: device_id is then SHA256 of nothing); boot_time stops RTMR3 at boot-mr-done and
// leaves the key provider out.
AppInfo decode_app_info(const tee::TdReport10& report, const std::vector<tee::TdxEvent>& runtime_events,
                        ByteView ppid, bool boot_time = false);

// SHA-256 of the exact app-compose.json bytes.
Bytes compose_hash(ByteView app_compose_json);

// report_data = SHA-512(tag ":" content), 64 bytes (dstack's QuoteContentType default hash).
Bytes report_data_for(std::string_view tag, ByteView content);

}  // namespace dstack::app
