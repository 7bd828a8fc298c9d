// The files the guest agent reads from the host-shared directory at start-up (spec agent.md §7.1):
// the app keys dstack-util provisioned, the host's system config, the instance info and the app
// compose manifest. Read strictly (duplicate keys refused, wrong types named by JSON path) but, as
// upstream's serde does, unknown keys are ignored and missing optional fields take their defaults.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::app {

// Upstream's limits on the host-shared files (dstack-util), and ours on the file it writes.
inline constexpr std::size_t max_sys_config_size = 32 * 1024;
inline constexpr std::size_t max_instance_info_size = 10 * 1024;
inline constexpr std::size_t max_app_compose_size = 50 * 1024 * 1024;
inline constexpr std::size_t max_app_keys_size = 1024 * 1024;

// Where the app keys came from, with what that provider handed over. Fields a kind does not have
// stay empty.
struct KeyProvider {
    enum class Kind { none, local, tpm, kms };
    Kind kind = Kind::none;
    std::string key_pem;          // None, Local, Tpm
    Bytes mr;                     // Local
    Bytes pubkey;                 // Tpm; Kms: DER SubjectPublicKeyInfo of the KMS root CA
    std::string url;              // Kms
    std::string tmp_ca_key_pem;   // Kms
    std::string tmp_ca_cert_pem;  // Kms
};

// "None", "Local", "Tpm", "Kms": the tags of upstream's externally tagged enum.
std::string_view key_provider_tag(KeyProvider::Kind kind);

// .appkeys.json
struct AppKeys {
    Bytes disk_crypt_key;
    Bytes env_crypt_key;   // absent reads as empty
    Bytes k256_key;        // 32 bytes
    Bytes k256_signature;  // 65 bytes, or empty
    std::string gateway_app_id;
    std::string ca_cert_pem;
    KeyProvider key_provider;
};

Result<AppKeys> parse_app_keys(std::string_view json);
// Upstream's shape and field order, hex in lowercase; parse_app_keys reads it back unchanged.
std::string app_keys_to_json(const AppKeys& keys);

// .sys-config.json
struct SysConfig {
    std::vector<std::string> kms_urls;
    std::vector<std::string> gateway_urls;  // also read from the older name tproxy_urls
    std::string pccs_url;                   // pccs_url, else collateral_urls.pccs, else ""
    std::string docker_registry;
    std::string host_api_url;
    std::string vm_config;  // the JSON string verbatim: the agent's Info returns it as is
    Bytes os_image_hash;    // vm_config's os_image_hash; empty when absent
};

Result<SysConfig> parse_sys_config(std::string_view json);

// .instance_info; each field absent reads as empty.
struct InstanceInfo {
    Bytes instance_id_seed;
    Bytes instance_id;
    Bytes app_id;
};

Result<InstanceInfo> parse_instance_info(std::string_view json);

// What the agent needs of app-compose.json. The compose hash is over the file's exact bytes, so
// callers keep the text too.
struct AppComposeInfo {
    std::string name;
    bool public_logs = false;
    bool public_sysinfo = false;
    bool public_tcbinfo = true;  // upstream's default when absent
    unsigned event_log_version = 1;
    // "none", "kms", "local" or "tpm": key_provider when given, else from the older booleans
    // kms_enabled and local_key_provider_enabled, as upstream's AppCompose::key_provider() does.
    std::string key_provider;
    std::string storage_fs;  // "" when absent
    bool no_instance_id = false;
};

Result<AppComposeInfo> parse_app_compose(std::string_view json);

// Each reads the file with its size limit and prefixes every error with the path:
// "/dstack/.host-shared/.appkeys.json: $.k256_key: expected 32 bytes, got 31".
Result<AppKeys> load_app_keys(const std::filesystem::path& path);
Result<SysConfig> load_sys_config(const std::filesystem::path& path);
Result<InstanceInfo> load_instance_info(const std::filesystem::path& path);
Result<AppComposeInfo> load_app_compose(const std::filesystem::path& path);

}  // namespace dstack::app
