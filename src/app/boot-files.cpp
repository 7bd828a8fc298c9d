// Parsers for the host-shared boot files. Field names, optionality and defaults follow upstream's
// serde structs (dstack-types AppKeys, KeyProvider, SysConfig, VmConfig, AppCompose).
#include "dstack/app/boot-files.hpp"

#include <array>
#include <optional>

#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/json-writer.hpp"

namespace dstack::app {
namespace {

// The files nest three levels at most; app-compose carries members we ignore (port_policy and
// whatever upstream adds), so it gets room.
constexpr int max_boot_file_depth = 16;
constexpr int max_app_compose_depth = 64;
// A handful of KMS and gateway URLs in practice.
constexpr std::size_t max_urls = 64;

constexpr std::size_t k256_key_size = 32;
constexpr std::size_t k256_signature_size = 65;

// A parsed document with its root object, kept together so views stay valid.
struct Parsed {
    json::Document document;
    json::Object root;
};

Result<Parsed> parse_root(std::string_view text, std::size_t max_bytes, int max_depth) {
    DSTACK_TRY(auto document, json::read_json(text, {max_bytes, max_depth}));
    DSTACK_TRY(auto root, document.root().object());
    return Parsed{std::move(document), root};
}

// serde's Option/default reading: absent or null gives the default.
Result<std::string> optional_string(const json::Object& object, std::string_view key) {
    auto value = object.optional(key);
    if (!value) return std::string();
    return value->string();
}

Result<Bytes> optional_hex(const json::Object& object, std::string_view key) {
    auto value = object.optional(key);
    if (!value) return Bytes{};
    return value->hex();
}

Result<bool> optional_bool(const json::Object& object, std::string_view key, bool fallback) {
    auto value = object.optional(key);
    if (!value) return fallback;
    return value->boolean();
}

Result<std::vector<std::string>> string_list(const json::Value& value) {
    DSTACK_TRY(auto array, value.array(max_urls));
    std::vector<std::string> items;
    for (std::size_t i = 0; i < array.size(); ++i) {
        DSTACK_TRY(auto item, array[i].string());
        items.push_back(std::move(item));
    }
    return items;
}

constexpr std::array<std::pair<std::string_view, KeyProvider::Kind>, 4> key_provider_tags{{
    {"None", KeyProvider::Kind::none},
    {"Local", KeyProvider::Kind::local},
    {"Tpm", KeyProvider::Kind::tpm},
    {"Kms", KeyProvider::Kind::kms},
}};

Result<KeyProvider> read_key_provider(const json::Object& outer) {
    DSTACK_TRY(auto value, outer.required("key_provider"));
    DSTACK_TRY(auto tagged, value.object());
    if (tagged.size() != 1)
        return make_error("{}: expected exactly one of None, Local, Tpm, Kms, got {} keys", tagged.path(), tagged.size());
    const auto& member = *value.raw().MemberBegin();
    std::string_view tag(member.name.GetString(), member.name.GetStringLength());
    KeyProvider provider;
    bool known = false;
    for (const auto& [name, kind] : key_provider_tags) {
        if (tag == name) {
            provider.kind = kind;
            known = true;
        }
    }
    if (!known) return make_error("{}: unknown key provider '{}' (expected None, Local, Tpm or Kms)", tagged.path(), tag);
    DSTACK_TRY(auto body, tagged.object(tag));
    switch (provider.kind) {
        case KeyProvider::Kind::none: {
            DSTACK_TRY(provider.key_pem, body.string("key"));
            break;
        }
        case KeyProvider::Kind::local: {
            DSTACK_TRY(provider.key_pem, body.string("key"));
            DSTACK_TRY(provider.mr, body.hex("mr"));
            break;
        }
        case KeyProvider::Kind::tpm: {
            DSTACK_TRY(provider.key_pem, body.string("key"));
            DSTACK_TRY(provider.pubkey, body.hex("pubkey"));
            break;
        }
        case KeyProvider::Kind::kms: {
            DSTACK_TRY(provider.url, body.string("url"));
            DSTACK_TRY(provider.pubkey, body.hex("pubkey"));
            DSTACK_TRY(provider.tmp_ca_key_pem, body.string("tmp_ca_key"));
            DSTACK_TRY(provider.tmp_ca_cert_pem, body.string("tmp_ca_cert"));
            break;
        }
    }
    return provider;
}

template <typename T>
Result<T> load(const std::filesystem::path& path, std::size_t max_size, Result<T> (*parse)(std::string_view)) {
    DSTACK_TRY(auto text, read_text_file(path, max_size));  // its errors name the path already
    auto parsed = parse(text);
    if (!parsed) return std::move(parsed).take_error().context(path.string());
    return parsed;
}

}  // namespace

std::string_view key_provider_tag(KeyProvider::Kind kind) {
    for (const auto& [name, each] : key_provider_tags)
        if (each == kind) return name;
    return "None";
}

Result<AppKeys> parse_app_keys(std::string_view text) {
    DSTACK_TRY(auto parsed, parse_root(text, max_app_keys_size, max_boot_file_depth));
    const auto& root = parsed.root;
    AppKeys keys;
    DSTACK_TRY(keys.disk_crypt_key, root.hex("disk_crypt_key"));
    DSTACK_TRY(keys.env_crypt_key, optional_hex(root, "env_crypt_key"));
    DSTACK_TRY(keys.k256_key, root.hex("k256_key", k256_key_size));
    DSTACK_TRY(keys.k256_signature, root.hex("k256_signature"));
    if (!keys.k256_signature.empty() && keys.k256_signature.size() != k256_signature_size)
        return make_error("{}: expected {} bytes or none, got {}", root.member_path("k256_signature"), k256_signature_size,
                          keys.k256_signature.size());
    DSTACK_TRY(keys.gateway_app_id, root.string("gateway_app_id"));
    DSTACK_TRY(keys.ca_cert_pem, root.string("ca_cert"));
    DSTACK_TRY(keys.key_provider, read_key_provider(root));
    return keys;
}

std::string app_keys_to_json(const AppKeys& keys) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::hex(out, "disk_crypt_key", keys.disk_crypt_key);
    json::hex(out, "env_crypt_key", keys.env_crypt_key);
    json::hex(out, "k256_key", keys.k256_key);
    json::hex(out, "k256_signature", keys.k256_signature);
    json::key(out, "gateway_app_id");
    json::string(out, keys.gateway_app_id);
    json::key(out, "ca_cert");
    json::string(out, keys.ca_cert_pem);
    json::key(out, "key_provider");
    out.StartObject();
    const auto& provider = keys.key_provider;
    json::key(out, key_provider_tag(provider.kind));
    out.StartObject();
    switch (provider.kind) {
        case KeyProvider::Kind::none:
            json::key(out, "key");
            json::string(out, provider.key_pem);
            break;
        case KeyProvider::Kind::local:
            json::key(out, "key");
            json::string(out, provider.key_pem);
            json::hex(out, "mr", provider.mr);
            break;
        case KeyProvider::Kind::tpm:
            json::key(out, "key");
            json::string(out, provider.key_pem);
            json::hex(out, "pubkey", provider.pubkey);
            break;
        case KeyProvider::Kind::kms:
            json::key(out, "url");
            json::string(out, provider.url);
            json::hex(out, "pubkey", provider.pubkey);
            json::key(out, "tmp_ca_key");
            json::string(out, provider.tmp_ca_key_pem);
            json::key(out, "tmp_ca_cert");
            json::string(out, provider.tmp_ca_cert_pem);
            break;
    }
    out.EndObject();
    out.EndObject();
    out.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

Result<SysConfig> parse_sys_config(std::string_view text) {
    DSTACK_TRY(auto parsed, parse_root(text, max_sys_config_size, max_boot_file_depth));
    const auto& root = parsed.root;
    SysConfig config;
    if (auto urls = root.optional("kms_urls")) {
        DSTACK_TRY(config.kms_urls, string_list(*urls));
    }
    // serde's alias: either name, and both at once is a duplicate field.
    auto gateway = root.optional("gateway_urls");
    auto tproxy = root.optional("tproxy_urls");
    if (gateway && tproxy)
        return make_error("{}: duplicate field 'gateway_urls' (also given as 'tproxy_urls')", root.path());
    if (gateway || tproxy) {
        DSTACK_TRY(config.gateway_urls, string_list(gateway ? *gateway : *tproxy));
    }
    DSTACK_TRY(config.pccs_url, optional_string(root, "pccs_url"));
    if (!root.optional("pccs_url")) {
        if (auto collateral = root.optional("collateral_urls")) {
            DSTACK_TRY(auto urls, collateral->object());
            DSTACK_TRY(config.pccs_url, optional_string(urls, "pccs"));
        }
    }
    DSTACK_TRY(config.docker_registry, optional_string(root, "docker_registry"));
    DSTACK_TRY(config.host_api_url, optional_string(root, "host_api_url"));
    DSTACK_TRY(config.vm_config, root.string("vm_config"));
    if (!config.vm_config.empty()) {
        auto path = root.member_path("vm_config");
        auto vm = parse_root(config.vm_config, max_sys_config_size, max_boot_file_depth);
        if (!vm) return std::move(vm).take_error().context(path);
        auto hash = optional_hex(vm->root, "os_image_hash");
        if (!hash) return std::move(hash).take_error().context(path);
        config.os_image_hash = std::move(*hash);
    }
    return config;
}

Result<InstanceInfo> parse_instance_info(std::string_view text) {
    DSTACK_TRY(auto parsed, parse_root(text, max_instance_info_size, max_boot_file_depth));
    const auto& root = parsed.root;
    InstanceInfo info;
    DSTACK_TRY(info.instance_id_seed, optional_hex(root, "instance_id_seed"));
    DSTACK_TRY(info.instance_id, optional_hex(root, "instance_id"));
    DSTACK_TRY(info.app_id, optional_hex(root, "app_id"));
    return info;
}

Result<AppComposeInfo> parse_app_compose(std::string_view text) {
    DSTACK_TRY(auto parsed, parse_root(text, max_app_compose_size, max_app_compose_depth));
    const auto& root = parsed.root;
    AppComposeInfo info;
    // Required upstream although the agent uses neither: a manifest without them is not one.
    DSTACK_TRY(auto manifest_version, root.uint_as<std::uint32_t>("manifest_version"));
    (void)manifest_version;
    DSTACK_TRY(auto runner, root.string("runner"));
    (void)runner;
    DSTACK_TRY(info.name, root.string("name"));
    DSTACK_TRY(info.public_logs, optional_bool(root, "public_logs", false));
    DSTACK_TRY(info.public_sysinfo, optional_bool(root, "public_sysinfo", false));
    DSTACK_TRY(info.public_tcbinfo, optional_bool(root, "public_tcbinfo", true));
    if (auto version = root.optional("event_log_version")) {
        DSTACK_TRY(info.event_log_version, version->uint_as<unsigned>());
        if (info.event_log_version != 1 && info.event_log_version != 2)
            return make_error("{}: expected 1 or 2, got {}", version->path(), info.event_log_version);
    }
    DSTACK_TRY(info.key_provider, optional_string(root, "key_provider"));
    if (info.key_provider.empty()) {
        DSTACK_TRY(auto kms_enabled, optional_bool(root, "kms_enabled", false));
        DSTACK_TRY(auto local_enabled, optional_bool(root, "local_key_provider_enabled", false));
        info.key_provider = kms_enabled ? "kms" : local_enabled ? "local" : "none";
    } else if (info.key_provider != "none" && info.key_provider != "kms" && info.key_provider != "local" &&
               info.key_provider != "tpm") {
        return make_error("{}: unknown key provider \"{}\" (expected none, kms, local or tpm)",
                          root.member_path("key_provider"), info.key_provider);
    }
    DSTACK_TRY(info.storage_fs, optional_string(root, "storage_fs"));
    DSTACK_TRY(info.no_instance_id, optional_bool(root, "no_instance_id", false));
    return info;
}

Result<AppKeys> load_app_keys(const std::filesystem::path& path) { return load(path, max_app_keys_size, &parse_app_keys); }
Result<SysConfig> load_sys_config(const std::filesystem::path& path) {
    return load(path, max_sys_config_size, &parse_sys_config);
}
Result<InstanceInfo> load_instance_info(const std::filesystem::path& path) {
    return load(path, max_instance_info_size, &parse_instance_info);
}
Result<AppComposeInfo> load_app_compose(const std::filesystem::path& path) {
    return load(path, max_app_compose_size, &parse_app_compose);
}

}  // namespace dstack::app
