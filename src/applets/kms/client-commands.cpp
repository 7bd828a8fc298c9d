#include "client-commands.hpp"

#include <cstdio>

#include <asio/this_coro.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dstack/app/agent-client.hpp"
#include "dstack/app/boot-files.hpp"
#include "dstack/app/encrypted-env.hpp"
#include "dstack/app/identity.hpp"
#include "dstack/app/kms-client.hpp"
#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/net/blocking.hpp"
#include "dstack/tee/attestation.hpp"
#include "support/command-line.hpp"

namespace dstack::applets::kms {
namespace {

// A plain coroutine: the RA-TLS client certificate attested by the agent, then GetAppKey.
asio::awaitable<Result<app::AppKeys>> fetch_app_keys(std::string kms_url, std::string agent_address, std::string vm_config) {
    auto executor = co_await asio::this_coro::executor;
    auto temp = co_await app::kms_get_temp_ca_cert(executor, kms_url);
    if (!temp) co_return std::move(temp).take_error();
    auto key = crypto::P256PrivateKey::generate();
    if (!key) co_return std::move(key).take_error();
    app::AgentClient agent(agent_address);
    auto attestation = co_await agent.attest(executor, app::ratls_report_data(key->spki_der()));
    if (!attestation) co_return std::move(attestation).take_error();
    auto stripped = tee::strip_attestation_for_certificate(*attestation);
    if (!stripped) co_return stripped.error().context("the guest agent's attestation");
    if (vm_config.empty()) {
        auto own = co_await agent.vm_config(executor);
        if (!own) co_return std::move(own).take_error();
        vm_config = std::move(*own);
    }
    auto certificate = app::issue_ratls_client_certificate(*key, *temp, std::move(*stripped), system_now());
    if (!certificate) co_return std::move(certificate).take_error();
    auto reply = co_await app::kms_get_app_key(executor, kms_url, *temp, *key, std::move(*certificate), std::move(vm_config));
    if (!reply) co_return std::move(reply).take_error();
    app::AppKeys keys;
    keys.disk_crypt_key = reply->disk_crypt_key;
    keys.env_crypt_key = reply->env_crypt_key;
    keys.k256_key = reply->k256_key;
    keys.k256_signature = reply->k256_signature;
    keys.gateway_app_id = reply->gateway_app_id;
    keys.ca_cert_pem = temp->ca_cert_pem;  // upstream takes GetTempCaCert's
    keys.key_provider.kind = app::KeyProvider::Kind::kms;
    keys.key_provider.url = app::kms_prpc_base(kms_url);
    keys.key_provider.pubkey = temp->ca_cert.spki_der();
    keys.key_provider.tmp_ca_key_pem = temp->temp_ca_key_pem;
    keys.key_provider.tmp_ca_cert_pem = temp->temp_ca_cert_pem;
    co_return keys;
}

}  // namespace

int get_app_key_main(std::string_view usage, int argc, char** argv) {
    std::string kms_url, agent_address = app::AgentClient::default_address(), vm_config_file, out_file;
    Command command("dstack kms get-app-key", usage, "dstack kms --help");
    command.cli().add_option("--kms", kms_url)->required();
    command.cli().add_option("--agent", agent_address);
    command.cli().add_option("--vm-config", vm_config_file);
    command.cli().add_option("--out", out_file);
    if (auto done = command.parse(argc, argv)) return *done;
    std::string vm_config;
    if (!vm_config_file.empty()) {
        auto text = read_text_file(vm_config_file, 64 * 1024);
        if (!text) return command.usage_error(text.error().message);
        vm_config = std::move(*text);
    }
    auto keys = net::run_blocking(fetch_app_keys(kms_url, agent_address, vm_config), "get-app-key");
    if (!keys) return command.fail(keys.error().message);
    std::string json = app::app_keys_to_json(*keys);
    if (out_file.empty()) {
        fmt::print("{}\n", json);
        return exit_ok;
    }
    if (auto written = write_file_atomic(out_file, as_bytes(json), 0600); !written) return command.fail(written.error().message);
    return exit_ok;
}

int encrypt_env_main(std::string_view usage, int argc, char** argv) {
    std::string kms_url, app_id_hex, k256_hex, input, out_file, compose_file;
    Command command("dstack kms encrypt-env", usage, "dstack kms --help");
    command.cli().add_option("--compose", compose_file);
    command.cli().add_option("--kms", kms_url)->required();
    command.cli().add_option("--app-id", app_id_hex)->required();
    command.cli().add_option("--k256-pubkey", k256_hex);
    command.cli().add_option("--out", out_file);
    command.cli().add_option("FILE", input)->required();
    if (auto done = command.parse(argc, argv)) return *done;
    auto app_id = hex_decode(app_id_hex);
    if (!app_id || app_id->size() != 20) return command.usage_error("--app-id: 20 bytes of hex");
    std::optional<Bytes> root;
    if (!k256_hex.empty()) {
        auto parsed = hex_decode(k256_hex);
        if (!parsed) return command.usage_error(fmt::format("--k256-pubkey: {}", parsed.error().message));
        root = std::move(*parsed);
    }
    auto text = read_file_or_stdin(input, app::max_encrypted_env_bytes);
    if (!text) return command.usage_error(text.error().message);
    auto vars = app::parse_env_text(as_chars(*text));
    if (!vars) return command.usage_error(fmt::format("{}: {}", input, vars.error().message));
    auto executor_task = [](std::string url, Bytes id, std::optional<Bytes> k256) -> asio::awaitable<Result<app::EnvPublicKey>> {
        auto executor = co_await asio::this_coro::executor;
        co_return co_await app::kms_get_env_public_key(executor, std::move(url), std::move(id), std::move(k256));
    };
    auto key = net::run_blocking(executor_task(kms_url, *app_id, root), "GetAppEnvEncryptPubKey");
    if (!key) return command.fail(key.error().message);
    Result<Bytes> bundle = make_error("unreachable");
    if (compose_file.empty()) {
        bundle = app::encrypt_env(*vars, key->public_key);
    } else {
        auto compose = read_file(compose_file, app::max_app_compose_size);
        if (!compose) return command.usage_error(compose.error().message);
        bundle = app::encrypt_env_authenticated(*vars, key->public_key, *app_id, app::compose_hash(*compose));
    }
    if (!bundle) return command.fail(bundle.error().message);
    if (out_file.empty()) {
        fmt::print("{}\n", hex_encode(*bundle));
        return exit_ok;
    }
    if (auto written = write_file_atomic(out_file, *bundle, 0644); !written) return command.fail(written.error().message);
    if (!root) std::fprintf(stderr, "warning: the env public key was not checked (no --k256-pubkey)\n");
    return exit_ok;
}

int decrypt_env_main(std::string_view usage, int argc, char** argv) {
    std::string keys_file, input, app_id_hex, compose_file;
    bool require_authenticated = false;
    Command command("dstack kms decrypt-env", usage, "dstack kms --help");
    command.cli().add_option("--keys", keys_file)->required();
    command.cli().add_option("--app-id", app_id_hex);
    command.cli().add_option("--compose", compose_file);
    command.cli().add_flag("--require-authenticated", require_authenticated);
    command.cli().add_option("FILE", input)->required();
    if (auto done = command.parse(argc, argv)) return *done;
    auto keys = app::load_app_keys(keys_file);
    if (!keys) return command.usage_error(keys.error().message);
    auto bundle = read_file_or_stdin(input, app::max_encrypted_env_bytes);
    if (!bundle) return command.usage_error(bundle.error().message);
    Bytes app_id, compose_hash;
    if (app::is_authenticated_env(*bundle) || require_authenticated) {
        auto id = hex_decode(app_id_hex);
        auto compose = read_file(compose_file, app::max_app_compose_size);
        if (!id || id->size() != 20 || compose_file.empty() || !compose)
            return command.usage_error("an authenticated env bundle needs --app-id HEX and --compose app-compose.json");
        app_id = *id;
        compose_hash = app::compose_hash(*compose);
    }
    const Bytes* authenticated = app::is_authenticated_env(*bundle) ? &*bundle : nullptr;
    const Bytes* legacy = authenticated ? nullptr : &*bundle;
    auto vars = app::select_env(authenticated, legacy, keys->env_crypt_key, app_id, compose_hash, require_authenticated);
    if (!vars) return command.fail(vars.error().message);
    fmt::print("{}\n", app::env_json(*vars));
    return exit_ok;
}

}  // namespace dstack::applets::kms
