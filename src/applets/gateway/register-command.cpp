#include "register-command.hpp"

#include <filesystem>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dstack/app/agent-client.hpp"
#include "dstack/app/gateway-client.hpp"
#include "dstack/base/base64.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/crypto/x25519.hpp"
#include "dstack/net/blocking.hpp"
#include "support/command-line.hpp"

namespace dstack::applets::gateway {
namespace {

constexpr std::string_view usage = R"(usage: dstack gateway register --gateway URL [OPTIONS]

Registers this CVM with a gateway (RegisterCvm), as a CVM's boot does: a client
certificate from the guest agent (GetTlsKey with the app info, signed by the KMS),
TLS that trusts only the KMS root CA, and the gateway's certificate checked for
the gateway app id. Prints the gateway's answer (JSON).

Options:
  --gateway URL          the gateway's RPC, e.g. https://gateway:8010
  --agent ADDR           the guest agent (default $DSTACK_AGENT_ADDRESS, else
                         unix:/var/run/dstack.sock)
  --gateway-app-id ID    the gateway app the KMS named; "any" checks none
                         (default "any")
  --wg-key-file F        this CVM's WireGuard private key (base64); made (0600)
                         when absent
  --port-policy JSON     {"ports":[{"port":443,"pp":false}],"restrict_mode":true}
  --wg-config-out F      write the WireGuard configuration there (0600)
  --wg-listen-port N     its ListenPort (default 9182)
)";

struct Work {
    Work() = default;
    std::string gateway, agent, gateway_app_id = "any", key_file, port_policy, config_out;
    int listen_port = 9182;
};

Result<std::string> wg_private_key(const std::string& path) {
    std::error_code ec;
    if (!path.empty() && std::filesystem::exists(path, ec)) {
        DSTACK_TRY(auto text, read_text_file(path, 1024));
        while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
        return text;
    }
    auto pair = crypto::x25519_generate();
    pair.private_key[0] &= 248;
    pair.private_key[31] = static_cast<std::uint8_t>((pair.private_key[31] & 127) | 64);
    std::string text = base64_encode(pair.private_key);
    if (!path.empty()) {
        std::string line = text + "\n";
        DSTACK_CHECK(write_file_atomic(path, as_bytes(line), 0600));
    }
    return text;
}

asio::awaitable<Result<std::string>> run(Work work) {
    auto executor = co_await asio::this_coro::executor;
    auto private_key = wg_private_key(work.key_file);
    if (!private_key) co_return private_key.error().context("WireGuard key");
    auto raw = base64_decode(*private_key);
    if (!raw || raw->size() != 32) co_return make_error("WireGuard key {}: not 32 bytes of base64", work.key_file);
    auto public_key = crypto::x25519_public_key(*raw);
    if (!public_key) co_return std::move(public_key).take_error();

    app::AgentClient agent(work.agent.empty() ? app::AgentClient::default_address() : work.agent);
    app::AgentClient::TlsKeyRequest request;
    request.subject = "dstack-guest-agent";
    request.usage_client_auth = true;
    request.with_app_info = true;
    auto tls_key = co_await agent.get_tls_key(executor, request);
    if (!tls_key) co_return tls_key.error().context("the client certificate");
    if (tls_key->chain_pem.size() < 2) {
        co_return make_error("the guest agent's certificate is not signed by a KMS (a chain of {}): RegisterCvm needs an app "
                             "whose keys come from a KMS",
                             tls_key->chain_pem.size());
    }
    app::GatewayClientOptions options;
    for (const auto& pem : tls_key->chain_pem) options.client_certificate.chain_pem += pem;
    options.client_certificate.key_pem = tls_key->key_pem;
    options.kms_root_ca_pem = tls_key->chain_pem.back();
    options.gateway_app_id = work.gateway_app_id;
    options.port_policy_json = work.port_policy;
    auto registration = co_await app::register_with_gateway(executor, work.gateway, base64_encode(*public_key), options);
    if (!registration) co_return std::move(registration).take_error();
    if (!work.config_out.empty()) {
        auto text = app::render_cvm_wg_config(*private_key, static_cast<std::uint16_t>(work.listen_port), *registration);
        auto written = write_file_atomic(work.config_out, as_bytes(text), 0600);
        if (!written) co_return written.error().context("WireGuard configuration");
    }
    std::string servers;
    for (const auto& server : registration->servers) {
        if (!servers.empty()) servers += ",";
        servers += fmt::format(R"({{"pk":"{}","ip":"{}","endpoint":"{}"}})", json_escape(server.public_key),
                               json_escape(server.ip), json_escape(server.endpoint));
    }
    co_return fmt::format(R"({{"client_ip":"{}","public_key":"{}","servers":[{}],"domain":"{}","external_port":{}}})",
                          json_escape(registration->client_ip), base64_encode(*public_key), servers,
                          json_escape(registration->domain), registration->external_port);
}

}  // namespace

int gateway_register_main(int argc, char** argv) {
    Work work;
    Command command("dstack gateway register", usage, "dstack gateway register --help");
    auto& cli = command.cli();
    cli.add_option("--gateway", work.gateway)->required();
    cli.add_option("--agent", work.agent);
    cli.add_option("--gateway-app-id", work.gateway_app_id);
    cli.add_option("--wg-key-file", work.key_file);
    cli.add_option("--port-policy", work.port_policy);
    cli.add_option("--wg-config-out", work.config_out);
    cli.add_option("--wg-listen-port", work.listen_port)->check(CLI::Range(1, 65535));
    if (auto done = command.parse(argc, argv)) return *done;
    auto result = net::run_blocking(run(work), "register");
    if (!result) return command.fail(result.error().message);
    fmt::print("{}\n", *result);
    return exit_ok;
}

}  // namespace dstack::applets::gateway
