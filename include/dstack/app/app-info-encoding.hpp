// AppInfo as upstream's RA-TLS extension 1.3.6.1.4.1.62397.1.9 carries it (spec/agent.md §6.4.2):
// rmp_serde::to_vec of the struct, i.e. a MessagePack array of its 9 fields in declaration order
// (app_id, compose_hash, instance_id, device_id, mr_system, mr_aggregated, os_image_hash,
// key_provider_info, init_script_hashes), byte fields as `bin`, init_script_hashes an array of bin.
#pragma once

#include "dstack/app/identity.hpp"
#include "dstack/base/bytes.hpp"

namespace dstack::app {

Bytes encode_app_info_msgpack(const AppInfo& info);

}  // namespace dstack::app
