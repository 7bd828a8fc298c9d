// applet: kms — its usage text below is also its --help.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "client-commands.hpp"
#include "dstack/app/kms-key-directory.hpp"
#include "dstack/base/log.hpp"
#include "dstack/net/blocking.hpp"
#include "dstack/net/tls.hpp"
#include "kms.hpp"
#include "onboard-service.hpp"
#include "onboarding.hpp"
#include "options.hpp"
#include "services.hpp"
#include "support/command-line.hpp"
#include "support/daemon-options.hpp"
#include "support/daemon.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack kms [serve] [OPTIONS]
       dstack kms bootstrap --domain NAME [OPTIONS]
       dstack kms onboard --source URL --domain NAME [OPTIONS]
       dstack kms rotate [--cert-dir DIR]
       dstack kms get-app-key --kms URL [--agent ADDR] [--vm-config FILE]
       dstack kms encrypt-env --kms URL --app-id HEX [--k256-pubkey HEX] [--compose F] FILE
       dstack kms decrypt-env --keys appkeys.json [--app-id HEX --compose F] FILE

The key management service: it verifies the quote in a CVM's RA-TLS client
certificate, asks its authorization policy whether that app (or KMS) may have
keys, and derives the app's keys from its root keys, the same on every KMS that
shares them. Wire-compatible with upstream dstack's KMS (its guests, SDKs and
key directories).

Subcommands:
  serve (default)  the RA-TLS service: POST /prpc/KMS.<Method>?json with
                   GetAppKey, GetAppEnvEncryptPubKey, GetMeta, GetKmsKey,
                   GetTempCaCert, SignCert; GET /health, GET /metrics. With no keys in
                   --cert-dir it serves the Onboard API (plain HTTP, on
                   --onboard-listen) until Onboard.Finish, or bootstraps at
                   once with --auto-bootstrap DOMAIN.
  bootstrap        create fresh root keys in --cert-dir (upstream's layout,
                   keys 0600), attested through the guest agent; prints the
                   bootstrap info ({ca_pubkey, k256_pubkey, attestation})
  onboard          copy the root keys of the KMS at --source over RA-TLS (both
                   sides attested, on every connection) into --cert-dir
  rotate           add a root-key epoch N+1 (fresh keys; earlier epochs kept).
                   Apps keep the epoch they were first given unless their
                   policy names another ("keyEpoch"); restart the KMS after.
  get-app-key      the guest side: GetTempCaCert, then GetAppKey with an RA-TLS
                   client certificate attested by the guest agent at --agent;
                   prints the app keys as upstream's .appkeys.json
  decrypt-env      the guest side: decrypt an encrypted env with the env key of
                   --keys appkeys.json; prints {"env":[...]}. An authenticated
                   bundle needs --app-id and --compose and is checked against
                   both; --require-authenticated refuses upstream's form
  encrypt-env      encrypt KEY=VALUE lines (or upstream's {"env":[...]} JSON)
                   for an app with the public key from GetAppEnvEncryptPubKey,
                   checking its signature by --k256-pubkey when given; writes
                   upstream's binary format to --out (default stdout, hex). With
                   --compose app-compose.json: our authenticated form instead,
                   bound to the app id and that compose's hash (upstream tools
                   ignore it; see app/encrypted-env.hpp)

Server options (serve, bootstrap, onboard; kms.toml keys in brackets):
  --config FILE            upstream's kms.toml; flags win
  --cert-dir DIR           key directory [core.cert_dir] (default /etc/kms/certs)
  --listen ADDR            RA-TLS listener [rpc] address/port (default 0.0.0.0:8000)
  --agent ADDR             the guest agent that attests this KMS (default
                           $DSTACK_AGENT_ADDRESS, else unix:/var/run/dstack.sock)
  --pccs URL               collateral from this PCCS [core.attestation.urls.pccs]
  --collateral FILE        collateral from a file [core.attestation.collateral_file]
  --collateral-cache DIR   the collateral cache
  --trust-root PEM         a trust anchor other than Intel's (the simulated TEE):
                           [core.attestation.root_ca.tdx] with
                           insecure_allow_external_trust_anchors = true
  --allow-tcb-status S     TCB statuses any caller may have (repeatable; default
                           UpToDate) [core.attestation.allowed_tcb_statuses]
  --auth webhook|policy|dev   [core.auth_api.type] (default webhook)
  --auth-webhook URL       upstream's auth API (auth-eth, auth-simple)
                           [core.auth_api.webhook.url]
  --auth-timeout SECONDS   a webhook slower than this denies (default 10)
  --auth-policy FILE       auth-simple's JSON policy, checked in-process and
                           reloaded when it changes [core.auth_api.policy.file]
  --insecure-dev-auth      required for --auth dev, which allows everything
  --gateway-app-id ID      dev mode's gateway app id (default "any")
  --no-self-authorization  do not ask the policy about this KMS itself
  --no-attest-rpc-cert     the RPC certificate carries no attestation
  --admin-listen ADDR      the Admin API (plain HTTP; token required:
                           --admin-token-file F or $DSTACK_KMS_ADMIN_TOKEN)
  --onboard-listen ADDR    the Onboard API while there are no keys
  --auto-bootstrap DOMAIN  bootstrap at start when there are no keys
  --site-name NAME, --threads N, --log-level L, --log-format text|json
  --domain NAME            (bootstrap, onboard) the KMS's name in its RPC
                           certificate
  --source URL             (onboard) the KMS to copy the keys from

Not in this build: OS images are not measured ([core.image] verify), so policies
see the os_image_hash the CVM measured in RTMR3 (its own claim); protobuf
requests (JSON only, as every upstream client sends).
)";

int run_main_service(Command& command, kms::Settings settings, app::KmsKeys keys,
                     std::shared_ptr<app::Verifier> verifier, std::shared_ptr<app::KmsAuthorizer> authorizer) {
    auto created = kms::Kms::create(settings, std::move(keys), verifier, authorizer);
    if (!created) return command.fail(created.error().message);
    std::shared_ptr<const kms::Kms> service = *created;
    const auto& k = service->keys();
    net::tls::ServerConfig tls;
    tls.certificate.chain_pem = k.rpc_cert_pem + k.epochs.front().ca_cert.pem();
    tls.certificate.key_pem = k.rpc_key.pkcs8_pem();
    // Client certificates are optional at the TLS layer and judged per method: their attestation
    // is the boundary, not the temp CA (whose key every client gets).
    tls.client_auth = net::tls::ClientAuth::optional;
    tls.verify_client = [](const std::vector<Bytes>&) -> Result<void> { return {}; };
    auto context = net::tls::make_server_context(std::move(tls));
    if (!context) return command.fail(context.error().message);

    Daemon daemon("dstack-kms", settings.threads);
    net::http::ServerOptions options;
    options.limits.max_body_bytes = 1024 * 1024;
    options.tls_handshake_timeout = std::chrono::seconds(10);
    if (auto listened = daemon.listen_tls({settings.rpc_address}, kms::main_service(service), options, *context); !listened)
        return command.fail(listened.error().message);
    if (!settings.admin_address.empty()) {
        net::http::ServerOptions admin;
        admin.limits.max_body_bytes = 64 * 1024;
        if (auto listened = daemon.listen({settings.admin_address}, kms::admin_service(service), admin); !listened)
            return command.fail(listened.error().message);
    }
    log::info("serving {} key epoch(s); authorization: {}", k.epochs.size(), authorizer->kind());
    return daemon.serve();
}

struct Shared {
    std::shared_ptr<app::Verifier> verifier;
    std::shared_ptr<app::KmsAuthorizer> authorizer;
    app::AgentClient agent{""};
    kms::KeySource source;
};

Result<std::unique_ptr<Shared>> prepare(const kms::Settings& settings) {
    auto shared = std::make_unique<Shared>();
    DSTACK_TRY(shared->verifier, kms::make_verifier(settings));
    DSTACK_TRY(shared->authorizer, kms::make_authorizer(settings));
    shared->agent = app::AgentClient(settings.agent_address.empty() ? app::AgentClient::default_address() : settings.agent_address);
    shared->source.settings = &settings;
    shared->source.agent = &shared->agent;
    shared->source.verifier = shared->verifier.get();
    shared->source.authorizer = shared->authorizer.get();
    return shared;
}

// Serves the Onboard API until Finish; the keys it obtained, or an error.
Result<app::KmsKeys> run_onboard_service(const kms::Settings& settings, const kms::KeySource& source) {
    auto state = std::make_shared<kms::OnboardState>();
    state->source = source;
    Daemon daemon("dstack-kms onboard", 1);
    state->finish = [&daemon] { daemon.stop(); };
    net::http::ServerOptions options;
    options.limits.max_body_bytes = 64 * 1024;
    DSTACK_CHECK(daemon.listen({settings.onboard_address}, kms::onboard_service(state), options));
    log::warn("no keys in {}: serving the Onboard API (unauthenticated plain HTTP) until Finish", settings.cert_dir);
    daemon.serve();
    std::lock_guard lock(state->keys_mutex);
    if (!state->keys) return make_error("Failed to onboard: the onboard service stopped with no keys");
    return std::move(*state->keys);
}

int serve_main(std::string_view, int argc, char** argv) {
    kms::Settings settings;
    LoggingOptions logging;
    Command command("dstack kms serve", usage, "dstack kms --help");
    kms::ServerOptions server(command, settings);
    add_logging_options(command.cli(), logging);
    if (auto done = command.parse(argc, argv)) return *done;
    if (auto applied = apply_logging(logging, "dstack-kms"); !applied) return command.usage_error(applied.error().message);
    if (auto applied = server.apply(); !applied) return command.usage_error(applied.error().message);
    if (settings.image_verify_requested) {
        log::warn("[core.image] verify = true: OS image verification is not implemented in this build; policies see the "
                  "os_image_hash the CVM measured in RTMR3, which is its own claim");
    }
    if (!settings.attest_rpc_cert) log::warn("attest_rpc_cert = false: the RPC certificate carries no attestation");
    auto shared = prepare(settings);
    if (!shared) return command.fail(shared.error().message);

    auto loaded = app::load_kms_keys(settings.cert_dir);
    if (!loaded) return command.fail(loaded.error().message);
    std::optional<app::KmsKeys> keys = std::move(*loaded);
    if (!keys) {
        if (!settings.auto_bootstrap_domain.empty()) {
            auto made = net::run_blocking(kms::bootstrap_keys((*shared)->source, settings.auto_bootstrap_domain, false),
                                          "auto-bootstrap");
            if (!made) return command.fail(made.error().message);
            if (auto stored = app::store_kms_keys(settings.cert_dir, *made); !stored) return command.fail(stored.error().message);
            keys = std::move(*made);
        } else if (settings.onboard_enabled) {
            auto onboarded = run_onboard_service(settings, (*shared)->source);
            if (!onboarded) return command.fail(onboarded.error().message);
            keys = std::move(*onboarded);
        } else {
            return command.fail(fmt::format("no keys in {}: run `dstack kms bootstrap --cert-dir {} --domain NAME` or `dstack "
                                            "kms onboard`, or enable onboarding",
                                            settings.cert_dir, settings.cert_dir));
        }
    }
    auto refreshed = net::run_blocking(kms::refresh_certificates((*shared)->source, std::move(*keys)), "certificate refresh");
    if (!refreshed) return command.fail(refreshed.error().message);
    if (auto stored = app::store_kms_certificates(settings.cert_dir, *refreshed); !stored)
        return command.fail(stored.error().message);
    return run_main_service(command, settings, std::move(*refreshed), (*shared)->verifier, (*shared)->authorizer);
}

int bootstrap_main(std::string_view, int argc, char** argv) {
    kms::Settings settings;
    LoggingOptions logging;
    std::string domain;
    Command command("dstack kms bootstrap", usage, "dstack kms --help");
    kms::ServerOptions server(command, settings);
    add_logging_options(command.cli(), logging);
    command.cli().add_option("--domain", domain)->required();
    if (auto done = command.parse(argc, argv)) return *done;
    if (auto applied = apply_logging(logging, "dstack-kms"); !applied) return command.usage_error(applied.error().message);
    if (auto applied = server.apply(); !applied) return command.usage_error(applied.error().message);
    auto existing = app::load_kms_keys(settings.cert_dir);
    if (!existing) return command.fail(existing.error().message);
    if (*existing) return command.fail(fmt::format("KMS has already been bootstrapped: {} holds keys", settings.cert_dir));
    auto shared = prepare(settings);
    if (!shared) return command.fail(shared.error().message);
    auto keys = net::run_blocking(kms::bootstrap_keys((*shared)->source, domain, true), "bootstrap");
    if (!keys) return command.fail(keys.error().message);
    if (auto stored = app::store_kms_keys(settings.cert_dir, *keys); !stored) return command.fail(stored.error().message);
    fmt::print("{}\n", app::bootstrap_info_json(*keys->bootstrap_info));
    return exit_ok;
}

int onboard_main(std::string_view, int argc, char** argv) {
    kms::Settings settings;
    LoggingOptions logging;
    std::string domain, source_url;
    Command command("dstack kms onboard", usage, "dstack kms --help");
    kms::ServerOptions server(command, settings);
    add_logging_options(command.cli(), logging);
    command.cli().add_option("--domain", domain)->required();
    command.cli().add_option("--source", source_url)->required();
    if (auto done = command.parse(argc, argv)) return *done;
    if (auto applied = apply_logging(logging, "dstack-kms"); !applied) return command.usage_error(applied.error().message);
    if (auto applied = server.apply(); !applied) return command.usage_error(applied.error().message);
    auto existing = app::load_kms_keys(settings.cert_dir);
    if (!existing) return command.fail(existing.error().message);
    if (*existing) return command.fail(fmt::format("KMS has already been onboarded: {} holds keys", settings.cert_dir));
    auto shared = prepare(settings);
    if (!shared) return command.fail(shared.error().message);
    auto keys = net::run_blocking(kms::onboard_keys((*shared)->source, source_url, domain), "onboarding");
    if (!keys) return command.fail(keys.error().message);
    if (auto stored = app::store_kms_keys(settings.cert_dir, *keys); !stored) return command.fail(stored.error().message);
    fmt::print("onboarded {} key epoch(s) from {} into {}\n", keys->epochs.size(), source_url, settings.cert_dir);
    return exit_ok;
}

int rotate_main(std::string_view, int argc, char** argv) {
    std::string cert_dir = "/etc/kms/certs";
    Command command("dstack kms rotate", usage, "dstack kms --help");
    command.cli().add_option("--cert-dir", cert_dir);
    if (auto done = command.parse(argc, argv)) return *done;
    auto epoch = app::add_key_epoch(cert_dir);
    if (!epoch) return command.fail(epoch.error().message);
    fmt::print("added root-key epoch {} in {}; restart the KMS to serve it\n", *epoch, cert_dir);
    return exit_ok;
}

}  // namespace

int kms_main(int argc, char** argv) {
    static constexpr Subcommand subcommands[] = {
        {"bootstrap", bootstrap_main},     {"decrypt-env", kms::decrypt_env_main},   {"encrypt-env", kms::encrypt_env_main}, {"get-app-key", kms::get_app_key_main},
        {"onboard", onboard_main},         {"rotate", rotate_main},                {"serve", serve_main},
    };
    // A bare `dstack kms` names the subcommands rather than start serving /etc/kms/certs unasked;
    // `dstack kms --config kms.toml` (upstream's way) serves.
    bool serve_by_default = argc > 1 && argv[1][0] == '-' && std::string_view(argv[1]) != "-h" &&
                            std::string_view(argv[1]) != "--help" && std::string_view(argv[1]) != "--version";
    return run_subcommand("kms", usage, subcommands, serve_by_default ? serve_main : nullptr, argc, argv);
}

}  // namespace dstack::applets
