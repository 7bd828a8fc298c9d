// AppInfo as upstream's RA-TLS extension 1.3.6.1.4.1.62397.1.9 carries it (spec/agent.md §6.4.2):
// rmp_serde::to_vec of the struct, i.e. a MessagePack array of its 9 fields in declaration order
// (app_id, compose_hash, instance_id, device_id, mr_system, mr_aggregated, os_image_hash,
// key_provider_info, init_script_hashes), byte fields as `bin`, init_script_hashes an array of bin.
#pragma once

#include "dstack/app/identity.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::app {

Bytes encode_app_info_msgpack(const AppInfo& info);
// The reverse, for whoever reads the extension (the gateway's RegisterCvm): the 9-element array
// exactly, each byte field bin or an integer array (serde's readers take both) of at most 64 bytes
// (key_provider_info, which is JSON, 4 KiB),
// at most 64 init-script hashes, nothing after it.
Result<AppInfo> decode_app_info_msgpack(ByteView bytes);

}  // namespace dstack::app
