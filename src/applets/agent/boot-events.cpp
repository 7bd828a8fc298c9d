// The events dstack-util measures into RTMR3 at boot, before the agent starts (spec/agent.md
// §7.2). On a real CVM they are already in the log; the simulator emits them on its first start
// so that Info, the KMS and verifiers see the same app identity a CVM would show.
#include <fmt/format.h>

#include "agent.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"

namespace dstack::applets::agent {

Result<std::vector<BootEvent>> boot_events_for(const BootFiles& files) {
    if (!files.instance) return make_error("instance info: missing (the app id and instance id come from it)");
    const auto& instance = *files.instance;
    auto compose_hash = app::compose_hash(as_bytes(files.compose_text));
    Bytes app_id = instance.app_id;
    if (app_id.empty()) app_id.assign(compose_hash.begin(), compose_hash.begin() + 20);
    Bytes instance_id;
    if (!files.compose.no_instance_id) {
        Bytes preimage = instance.instance_id_seed;
        preimage.insert(preimage.end(), app_id.begin(), app_id.end());
        auto digest = crypto::sha256(preimage);
        instance_id.assign(digest.begin(), digest.begin() + 20);
    }
    const auto& provider = files.keys.key_provider;
    std::string provider_name, provider_id;
    switch (provider.kind) {
    case app::KeyProvider::Kind::none: provider_name = "none"; break;
    case app::KeyProvider::Kind::local: provider_name = "local-sgx"; provider_id = hex_encode(provider.mr); break;
    case app::KeyProvider::Kind::tpm: provider_name = "tpm"; break;
    case app::KeyProvider::Kind::kms: provider_name = "kms"; provider_id = hex_encode(provider.pubkey); break;
    }
    std::string key_provider = fmt::format(R"({{"name":"{}","id":"{}"}})", provider_name, provider_id);
    std::string storage_fs = files.compose.storage_fs.empty() ? "zfs" : files.compose.storage_fs;

    std::vector<BootEvent> events;
    events.push_back({"system-preparing", {}});
    events.push_back({"app-id", app_id});
    events.push_back({"compose-hash", compose_hash});
    events.push_back({"instance-id", instance_id});
    events.push_back({"boot-mr-done", {}});
    if (provider.kind == app::KeyProvider::Kind::kms && !files.sys_config.os_image_hash.empty()) {
        events.push_back({"os-image-hash", files.sys_config.os_image_hash});
    }
    events.push_back({"key-provider", Bytes(key_provider.begin(), key_provider.end())});
    events.push_back({"storage-fs", Bytes(storage_fs.begin(), storage_fs.end())});
    events.push_back({"system-ready", {}});
    return events;
}

}  // namespace dstack::applets::agent
