#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "../vectors.hpp"
#include "dstack/app/boot-files.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"

using namespace dstack;
using namespace dstack::app;
using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vector_path;

namespace {

constexpr const char* appkeys_vector = "dstack/simulator/appkeys.json";
constexpr const char* sys_config_vector = "dstack/simulator/sys-config.json";
constexpr const char* app_compose_vector = "dstack/simulator/app-compose.json";

std::string hex_of(const Bytes& bytes) { return hex_encode(bytes); }

std::string error_of(const auto& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

const std::string key32 = std::string(64, 'a');
const std::string sig65 = std::string(130, 'b');

// An .appkeys.json with the given key_provider member (and overrides spliced in before it).
std::string appkeys_with(const std::string& provider, const std::string& extra = "") {
    return R"({"disk_crypt_key":"01","k256_key":")" + key32 + R"(","k256_signature":")" + sig65 +
           R"(","gateway_app_id":"any","ca_cert":"CA",)" + extra + R"("key_provider":)" + provider + "}";
}

std::filesystem::path temp_dir() {
    char pattern[] = "/tmp/dstack-boot-files-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    return pattern;
}

}  // namespace

TEST_CASE("boot files: the simulator's .appkeys.json" * doctest::skip(vector_missing(appkeys_vector))) {
    auto keys = load_app_keys(vector_path(appkeys_vector));
    REQUIRE_MESSAGE(keys.ok(), keys.error().message);
    CHECK(hex_of(keys->disk_crypt_key) == "2cbc10ccbed084b91af2ceff8400e6082402367f18a2c6248bac17d2fc951607");
    CHECK(hex_of(keys->env_crypt_key) == "4f3cf0a19a0444674c8e51222afd395b8df9fad2ba3cd7956f640a4b3c046db6");
    CHECK(hex_of(keys->k256_key) == "d6e88992cdeeee35fe70b5db61ab66cdb191fb9b6ec9313757ef162dd7214d5d");
    CHECK(keys->k256_signature.size() == 65);
    CHECK(hex_of(keys->k256_signature).substr(0, 16) == "9e618603e72d01fe");
    CHECK(keys->gateway_app_id == "any");
    CHECK(keys->ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----\nMIIBmzCC"));
    CHECK(keys->key_provider.kind == KeyProvider::Kind::none);
    CHECK(keys->key_provider.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\nMIGHAgEA"));
    CHECK(keys->key_provider.key_pem.ends_with("-----END PRIVATE KEY-----\n"));

    // What we write reads back as the same keys, and in upstream's shape.
    auto json = app_keys_to_json(*keys);
    CHECK(json.find(R"("key_provider":{"None":{"key":"-----BEGIN PRIVATE KEY-----\n)") != std::string::npos);
    auto again = parse_app_keys(json);
    REQUIRE_MESSAGE(again.ok(), again.error().message);
    CHECK(app_keys_to_json(*again) == json);
    CHECK(again->k256_key == keys->k256_key);
    CHECK(again->ca_cert_pem == keys->ca_cert_pem);
}

TEST_CASE("boot files: the simulator's .sys-config.json" * doctest::skip(vector_missing(sys_config_vector))) {
    auto config = load_sys_config(vector_path(sys_config_vector));
    REQUIRE_MESSAGE(config.ok(), config.error().message);
    CHECK(config->kms_urls == std::vector<std::string>{"https://kms.1022.dstack.org:12001"});
    CHECK(config->gateway_urls == std::vector<std::string>{"https://tproxy.1022.dstack.org:12002"});
    CHECK(config->pccs_url.empty());
    CHECK(config->docker_registry.empty());
    CHECK(config->host_api_url == "vsock://2:12000/api");
    CHECK(config->vm_config ==
          R"({"os_image_hash":"64f0d1545cd510a8dfed7ad609d105b5d41f0cb2afcfdda8867ede00c88add7a","cpu_count":1,"memory_size":2147483648})");
    CHECK(hex_of(config->os_image_hash) == "64f0d1545cd510a8dfed7ad609d105b5d41f0cb2afcfdda8867ede00c88add7a");
}

TEST_CASE("boot files: the simulator's app-compose.json" * doctest::skip(vector_missing(app_compose_vector))) {
    auto compose = load_app_compose(vector_path(app_compose_vector));
    REQUIRE_MESSAGE(compose.ok(), compose.error().message);
    CHECK(compose->name == "guest-agent");
    CHECK(compose->public_logs);
    CHECK(compose->public_sysinfo);
    CHECK(compose->public_tcbinfo);
    CHECK(compose->event_log_version == 1);
    CHECK(compose->key_provider == "kms");
    CHECK(compose->storage_fs == "ext4");
    CHECK_FALSE(compose->no_instance_id);
}

TEST_CASE("boot files: each key provider form") {
    SUBCASE("Local") {
        auto keys = parse_app_keys(appkeys_with(R"({"Local":{"key":"K","mr":"00ff","extra":1}})"));
        REQUIRE_MESSAGE(keys.ok(), keys.error().message);
        CHECK(keys->key_provider.kind == KeyProvider::Kind::local);
        CHECK(keys->key_provider.key_pem == "K");
        CHECK(hex_of(keys->key_provider.mr) == "00ff");
        CHECK(keys->env_crypt_key.empty());  // absent: upstream's default
        CHECK(parse_app_keys(app_keys_to_json(*keys))->key_provider.mr == keys->key_provider.mr);
    }
    SUBCASE("Tpm") {
        auto keys = parse_app_keys(appkeys_with(R"({"Tpm":{"key":"K","pubkey":"0102"}})"));
        REQUIRE_MESSAGE(keys.ok(), keys.error().message);
        CHECK(keys->key_provider.kind == KeyProvider::Kind::tpm);
        CHECK(hex_of(keys->key_provider.pubkey) == "0102");
        CHECK(app_keys_to_json(*parse_app_keys(app_keys_to_json(*keys))) == app_keys_to_json(*keys));
    }
    SUBCASE("Kms") {
        auto keys = parse_app_keys(appkeys_with(
            R"({"Kms":{"url":"https://kms/prpc","pubkey":"3059","tmp_ca_key":"KEY","tmp_ca_cert":"CERT"}})"));
        REQUIRE_MESSAGE(keys.ok(), keys.error().message);
        const auto& provider = keys->key_provider;
        CHECK(provider.kind == KeyProvider::Kind::kms);
        CHECK(provider.url == "https://kms/prpc");
        CHECK(hex_of(provider.pubkey) == "3059");
        CHECK(provider.tmp_ca_key_pem == "KEY");
        CHECK(provider.tmp_ca_cert_pem == "CERT");
        auto json = app_keys_to_json(*keys);
        CHECK(json.find(R"("key_provider":{"Kms":{"url":"https://kms/prpc","pubkey":"3059","tmp_ca_key":"KEY","tmp_ca_cert":"CERT"}})") !=
              std::string::npos);
        CHECK(app_keys_to_json(*parse_app_keys(json)) == json);
    }
    SUBCASE("an empty k256_signature") {
        auto text = appkeys_with(R"({"None":{"key":"K"}})");
        text.replace(text.find(sig65), sig65.size(), "");
        auto keys = parse_app_keys(text);
        REQUIRE_MESSAGE(keys.ok(), keys.error().message);
        CHECK(keys->k256_signature.empty());
    }
}

TEST_CASE("boot files: bad .appkeys.json is refused with the field named") {
    const std::string none = R"({"None":{"key":"K"}})";
    CHECK(error_of(parse_app_keys(appkeys_with(R"({"None":{"key":"K"},"Tpm":{"key":"K","pubkey":"00"}})"))) ==
          "$.key_provider: expected exactly one of None, Local, Tpm, Kms, got 2 keys");
    CHECK(error_of(parse_app_keys(appkeys_with("{}"))) == "$.key_provider: expected exactly one of None, Local, Tpm, Kms, got 0 keys");
    CHECK(error_of(parse_app_keys(appkeys_with(R"({"Sgx":{}})"))).starts_with("$.key_provider: unknown key provider 'Sgx'"));
    CHECK(error_of(parse_app_keys(appkeys_with(R"({"None":{"key":5}})"))) == "$.key_provider.None.key: expected a string, got 5");
    CHECK(error_of(parse_app_keys(appkeys_with(R"({"Local":{"key":"K"}})"))) == "$.key_provider.Local: missing field 'mr'");
    CHECK(error_of(parse_app_keys(appkeys_with(R"("None")"))) == "$.key_provider: expected an object, got a string");

    auto short_key = appkeys_with(none);
    short_key.replace(short_key.find(key32), 2, "");
    CHECK(error_of(parse_app_keys(short_key)) == "$.k256_key: expected 32 bytes, got 31");
    auto short_sig = appkeys_with(none);
    short_sig.replace(short_sig.find(sig65), 2, "");
    CHECK(error_of(parse_app_keys(short_sig)) == "$.k256_signature: expected 65 bytes or none, got 64");
    CHECK(error_of(parse_app_keys(appkeys_with(none, R"("env_crypt_key":7,)"))) == "$.env_crypt_key: expected a hex string, got 7");
    CHECK(error_of(parse_app_keys(appkeys_with(none, R"("gateway_app_id":"again",)"))) == "$: duplicate key 'gateway_app_id'");
    // Unknown members are ignored, as upstream's serde does.
    CHECK(parse_app_keys(appkeys_with(none, R"("unknown_member":[1,2],)")).ok());
}

TEST_CASE("boot files: .sys-config.json aliases, defaults and errors") {
    auto old = parse_sys_config(R"({"tproxy_urls":["https://g"],"collateral_urls":{"pccs":"https://pccs"},"vm_config":""})");
    REQUIRE_MESSAGE(old.ok(), old.error().message);
    CHECK(old->gateway_urls == std::vector<std::string>{"https://g"});
    CHECK(old->kms_urls.empty());
    CHECK(old->pccs_url == "https://pccs");
    CHECK(old->host_api_url.empty());
    CHECK(old->os_image_hash.empty());
    // pccs_url, when given, wins over collateral_urls.pccs.
    CHECK(parse_sys_config(R"({"pccs_url":"https://a","collateral_urls":{"pccs":"https://b"},"vm_config":"{}"})")->pccs_url ==
          "https://a");

    CHECK(error_of(parse_sys_config(R"({"gateway_urls":[],"tproxy_urls":[],"vm_config":""})")) ==
          "$: duplicate field 'gateway_urls' (also given as 'tproxy_urls')");
    CHECK(error_of(parse_sys_config(R"({"kms_urls":"https://k","vm_config":""})")) == "$.kms_urls: expected an array, got a string");
    CHECK(error_of(parse_sys_config(R"({"kms_urls":[1],"vm_config":""})")) == "$.kms_urls[0]: expected a string, got 1");
    CHECK(error_of(parse_sys_config(R"({"kms_urls":[]})")) == "$: missing field 'vm_config'");
    CHECK(error_of(parse_sys_config(R"({"vm_config":"[1]"})")) == "$.vm_config: $: expected an object, got an array");
    CHECK(error_of(parse_sys_config(R"({"vm_config":"{\"os_image_hash\":5}"})")) ==
          "$.vm_config: $.os_image_hash: expected a hex string, got 5");
    CHECK(error_of(parse_sys_config(R"({"vm_config":"{"})")).starts_with("$.vm_config: not valid JSON"));
    CHECK(error_of(parse_sys_config(R"({"vm_config":"","vm_config":""})")) == "$: duplicate key 'vm_config'");
}

TEST_CASE("boot files: .instance_info") {
    auto info = parse_instance_info(R"({"instance_id_seed":"0a0b","instance_id":"0c","app_id":"0D","later":true})");
    REQUIRE_MESSAGE(info.ok(), info.error().message);
    CHECK(hex_of(info->instance_id_seed) == "0a0b");
    CHECK(hex_of(info->instance_id) == "0c");
    CHECK(hex_of(info->app_id) == "0d");
    auto empty = parse_instance_info("{}");
    REQUIRE(empty.ok());
    CHECK(empty->app_id.empty());
    CHECK(error_of(parse_instance_info(R"({"app_id":"xyz"})")).starts_with("$.app_id: "));
    CHECK(error_of(parse_instance_info(R"({"app_id":[]})")) == "$.app_id: expected a hex string, got an array");
}

TEST_CASE("boot files: app-compose.json defaults and errors") {
    const std::string head = R"({"manifest_version":2,"runner":"docker-compose","name":"app")";
    auto minimal = parse_app_compose(head + "}");
    REQUIRE_MESSAGE(minimal.ok(), minimal.error().message);
    CHECK_FALSE(minimal->public_logs);
    CHECK_FALSE(minimal->public_sysinfo);
    CHECK(minimal->public_tcbinfo);  // upstream's default_true
    CHECK(minimal->event_log_version == 1);
    CHECK(minimal->key_provider == "none");
    CHECK(minimal->storage_fs.empty());
    // The older booleans choose the key provider when key_provider is absent.
    CHECK(parse_app_compose(head + R"(,"kms_enabled":true})")->key_provider == "kms");
    CHECK(parse_app_compose(head + R"(,"local_key_provider_enabled":true})")->key_provider == "local");
    CHECK(parse_app_compose(head + R"(,"key_provider":"tpm","kms_enabled":true})")->key_provider == "tpm");
    CHECK(parse_app_compose(head + R"(,"event_log_version":2})")->event_log_version == 2);

    CHECK(error_of(parse_app_compose(head + R"(,"event_log_version":3})")) == "$.event_log_version: expected 1 or 2, got 3");
    CHECK(error_of(parse_app_compose(head + R"(,"key_provider":"sgx"})"))
              .starts_with(R"($.key_provider: unknown key provider "sgx")"));
    CHECK(error_of(parse_app_compose(head + R"(,"public_logs":"yes"})")) == "$.public_logs: expected a boolean, got a string");
    CHECK(error_of(parse_app_compose(head + R"(,"name":"again"})")) == "$: duplicate key 'name'");
    CHECK(error_of(parse_app_compose(R"({"manifest_version":2,"runner":"docker-compose"})")) == "$: missing field 'name'");
    CHECK(error_of(parse_app_compose("[]")) == "$: expected an object, got an array");
}

TEST_CASE("boot files: load_* name the file and refuse one over its size limit") {
    auto dir = temp_dir();
    auto keys_path = dir / ".appkeys.json";
    auto text = appkeys_with(R"({"None":{"key":"K"}})");
    text.replace(text.find(key32), 2, "");
    REQUIRE(write_file_atomic(keys_path, as_bytes(text)).ok());
    CHECK(error_of(load_app_keys(keys_path)) == keys_path.string() + ": $.k256_key: expected 32 bytes, got 31");

    auto config_path = dir / ".sys-config.json";
    std::string big = R"({"vm_config":"","pad":")" + std::string(max_sys_config_size, ' ') + R"("})";
    REQUIRE(write_file_atomic(config_path, as_bytes(big)).ok());
    auto refused = error_of(load_sys_config(config_path));
    CHECK(refused.find(config_path.string()) != std::string::npos);
    CHECK(refused.find("too large") != std::string::npos);

    auto info_path = dir / ".instance_info";
    REQUIRE(write_file_atomic(info_path, as_bytes(std::string(max_instance_info_size + 1, ' '))).ok());
    CHECK(error_of(load_instance_info(info_path)).find("too large") != std::string::npos);
    CHECK(error_of(load_app_compose(dir / "app-compose.json")).find((dir / "app-compose.json").string()) != std::string::npos);
    std::filesystem::remove_all(dir);
}
