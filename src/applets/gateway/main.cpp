// applet: gateway — its usage text below is also its --help.
#include <cstdio>
#include <string_view>

#include <sys/resource.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "certbot-command.hpp"
#include "dstack/app/agent-client.hpp"
#include "dstack/base/file.hpp"
#include "dstack/net/blocking.hpp"
#include "dstack/net/http-client.hpp"
#include "dstack/base/log.hpp"
#include "gateway.hpp"
#include "options.hpp"
#include "proxy.hpp"
#include "register-command.hpp"
#include "services.hpp"
#include "support/command-line.hpp"
#include "support/daemon-options.hpp"
#include "support/daemon.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack gateway [serve] [OPTIONS]
       dstack gateway certbot issue --acme-url URL --domain NAME ... [OPTIONS]
       dstack gateway register --gateway URL [--agent ADDR] [OPTIONS]

The TLS gateway at the edge. Clients reach apps at
  https://<app_id|instance_id>[-<port>][s|g].<base_domain>
(port 80 by default; `s`: TLS passed through to the app, default port 443; `g`:
HTTP/2 offered), and custom domains through a `_dstack-app-address.<name>` TXT
record "<app_id>:<port>" (always passed through). TLS is terminated with the
certificate for the base domain: the operator's (--cert-chain/--cert-key), one
from ACME, else a self-signed wildcard made at start (shared by every node
through the store, replaced as soon as a real one arrives). CVMs register over
RA-TLS (RegisterCvm) and are reached through WireGuard. Wire-compatible with
upstream dstack-gateway's RPC, admin API and label grammar.

Subcommands:
  serve (default)    the proxy, the RPC, the admin API and the dashboard
  certbot issue      get a certificate from an ACME server (dns-01 through the
                     Cloudflare API, or http-01) into a directory; see
                     `dstack gateway certbot --help`
  register           the CVM side: RegisterCvm with the app's KMS-signed
                     certificate, and the WireGuard configuration it gets

Serve options (gateway.toml keys in brackets; --config FILE reads it, flags win):
  --proxy-listen H:P       proxy address, P a port or FIRST-LAST (repeatable)
                           [core.proxy.listen_addr/listen_port] (default 0.0.0.0:8443)
  --base-domain NAME       the platform's domain [core.proxy.base_domain]
  --cert-chain F --cert-key F   a certificate for *.NAME [core.proxy.cert_chain/cert_key]
  --no-self-signed         no self-signed wildcard when nothing covers NAME
  --acme-url URL           get *.NAME from this ACME directory and renew it (the
                           node that takes the store's lock issues; all serve it)
  --acme-challenge dns-01|http-01   (default dns-01; http-01 certifies NAME only)
  --cloudflare-token-file F, --cloudflare-api-url URL   dns-01 through Cloudflare
  --http01-listen ADDR     http-01: where the CA's requests arrive
  --acme-ca-file PEM       trust for the ACME and Cloudflare APIs (default: system)
  --acme-renew-before D    renew that long before expiry (default 30d)
  --acme-check-interval D  (default 1h)
  --listen ADDR            the RPC (RegisterCvm, Info, AcmeInfo, GetPeers)
                           [address/port] (default 127.0.0.1:8010)
  --tls-cert F --tls-key F the RPC's certificate chain and key [tls.certs/key]
  --rpc-domain NAME        instead: a certificate for NAME from the guest agent
                           (GetTlsKey, RA-TLS, signed by the KMS; its root CA then
                           also checks CVMs' certificates) [core.rpc_domain]
  --client-ca F            the KMS root CA CVMs' client certificates chain to
                           [tls.mutual.ca_certs]; RegisterCvm needs it
  --admin-listen ADDR      Admin API, dashboard (GET /) and /metrics, plain HTTP
                           [core.admin]; token: --admin-token-file F,
                           [core.admin.auth_token] or $DSTACK_GATEWAY_ADMIN_TOKEN
  --admin-insecure-no-auth no token (never in production)
  --debug-listen ADDR      the debug API: RegisterCvm with given ids, no
                           attestation [core.debug.insecure_enable_debug_rpc]
  --insecure-localhost-backend   the id `localhost` is 127.0.0.1 (tests only)
  --inbound-proxy-protocol clients come through a load balancer that sends a
                           PROXY v1/v2 header [core.proxy.inbound_pp_enabled]
  --max-connections-per-app N  (default 2000; 0: none) [core.proxy.max_connections_per_app]
  --max-connections-per-client N  per client IP or IPv6 /64 (default 256)
  --max-connections N      the whole proxy (default 100000)
  --idle-timeout S, --handshake-timeout S, --connect-timeout S, --total-timeout S
                           [core.proxy.timeouts] (defaults 600, 5, 5, 18000)
  --dns-server IP[:PORT]   for custom domains' TXT records (repeatable)
  --wg-interface NAME      [core.wg.interface] (default wg0), driven through
                           its userspace UAPI socket (wireguard-go):
                           --wg-uapi-socket PATH (default /var/run/wireguard/NAME.sock)
  --wg-ip CIDR, --wg-client-range CIDR, --wg-reserved-net CIDR, --wg-endpoint H:P,
  --wg-listen-port N       [core.wg.*]; the private key is [core.wg.private_key]
                           or DATA_DIR/wg.key (made at first start, 0600)
  --no-wireguard           drive no WireGuard device (the data path alone)
  --data-dir DIR           node state: the single-node store, wg.key, node_uuid
                           [core.sync.data_dir] (default /var/lib/dstack-gateway)
  --etcd URL               a cluster: every node on the same etcd (repeatable)
  --etcd-prefix P          (default /dstack-gateway/)
  --node-id N, --node-url URL   this node in the cluster [core.sync.node_id/my_url]
  --agent ADDR             the guest agent: /.dstack/app-info, and the key that
                           seals certificate keys in the store (GetKey)
  --seal-key-file F        that key from a file (64 hex digits) instead
  --threads N, --log-level L, --log-format text|json

Not in this build: the legacy quote-only client certificates of pre-0.5.6
CVMs (RegisterCvm needs the KMS-signed app-info extension), the port-policy
fetch from legacy CVMs, kernel WireGuard (netlink), splice/kTLS, htpasswd
admin users, CAA pinning and ACME account rotation inside `serve` (`certbot
issue --set-caa` does CAA), and DNS providers other than Cloudflare.
)";

// Raises the soft limit on open files to the hard one: a proxy holds two per connection.
void raise_file_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

struct Creation {
    std::optional<Result<std::shared_ptr<gateway::Gateway>>> result;
};

asio::awaitable<void> create_gateway(gateway::Settings settings, asio::any_io_executor executor, Creation* creation) {
    creation->result = co_await gateway::Gateway::create(std::move(settings), executor);
}

struct RpcIdentity {
    RpcIdentity() = default;
    net::tls::CertifiedKey certificate;
    std::string client_ca_pem;
};

// Upstream's start-up (spec/gateway.md §1 step 5): the RPC certificate from the guest agent, for
// rpc_domain and the host of my_url, its chain's last certificate (the KMS root CA) the anchor
// for CVMs' client certificates.
asio::awaitable<Result<RpcIdentity>> rpc_identity_from_agent(gateway::Settings s) {
    auto executor = co_await asio::this_coro::executor;
    app::AgentClient agent(s.agent_address.empty() ? app::AgentClient::default_address() : s.agent_address);
    app::AgentClient::TlsKeyRequest request;
    request.subject = "dstack-gateway";
    request.alt_names = {s.rpc_domain};
    if (auto url = net::http::parse_url(s.node_url); url && url->endpoint.host != s.rpc_domain && !url->endpoint.host.empty())
        request.alt_names.push_back(url->endpoint.host);
    request.usage_ra_tls = true;
    request.usage_server_auth = true;
    request.usage_client_auth = true;
    request.with_app_info = true;
    auto key = co_await agent.get_tls_key(executor, request);
    if (!key) co_return key.error().context("the RPC certificate (--rpc-domain)");
    RpcIdentity identity;
    for (const auto& pem : key->chain_pem) identity.certificate.chain_pem += pem;
    identity.certificate.key_pem = key->key_pem;
    if (key->chain_pem.size() > 1) identity.client_ca_pem = key->chain_pem.back();
    co_return identity;
}

Result<std::shared_ptr<net::tls::ServerContext>> rpc_tls_context(const gateway::Settings& s) {
    net::tls::ServerConfig config;
    std::string client_ca;
    if (!s.rpc_domain.empty() && s.tls_cert_file.empty()) {
        DSTACK_TRY(auto identity, net::run_blocking(rpc_identity_from_agent(s), "RPC certificate"));
        config.certificate = identity.certificate;
        client_ca = identity.client_ca_pem;
    } else {
        DSTACK_TRY(config.certificate.chain_pem, read_text_file(s.tls_cert_file, 1024 * 1024));
        DSTACK_TRY(config.certificate.key_pem, read_text_file(s.tls_key_file, 1024 * 1024));
    }
    if (!s.client_ca_file.empty()) {
        DSTACK_TRY(client_ca, read_text_file(s.client_ca_file, 1024 * 1024));
    }
    if (!client_ca.empty()) {
        config.client_ca_pem = client_ca;
        config.client_auth = net::tls::ClientAuth::optional;
    }
    config.handshake_timeout = std::chrono::seconds(10);
    return net::tls::make_server_context(std::move(config));
}

int serve_main(std::string_view, int argc, char** argv) {
    gateway::Settings settings;
    LoggingOptions logging;
    Command command("dstack gateway serve", usage, "dstack gateway --help");
    gateway::ServeOptions options(command, settings);
    add_logging_options(command.cli(), logging);
    if (auto done = command.parse(argc, argv)) return *done;
    if (auto applied = apply_logging(logging, "dstack-gateway"); !applied) return command.usage_error(applied.error().message);
    if (auto applied = options.apply(); !applied) return command.usage_error(applied.error().message);
    if (settings.insecure_localhost_backend) log::warn("insecure_localhost_backend: the id `localhost` reaches this host's loopback");
    raise_file_limit();

    Daemon daemon("dstack-gateway", settings.threads);
    auto& context = daemon.runtime().context();
    Creation creation;
    asio::co_spawn(context, create_gateway(settings, daemon.runtime().executor(), &creation), asio::detached);
    while (!creation.result) {
        if (context.run_one() == 0) return command.fail("gateway start-up stopped before it finished");
    }
    if (!*creation.result) return command.fail(creation.result->error().message);
    std::shared_ptr<gateway::Gateway> gateway = std::move(creation.result->value());

    auto proxy = std::make_unique<gateway::Proxy>(gateway->settings(), gateway->certificates(), gateway->registry(),
                                                  gateway::gateway_site(gateway));
    if (auto started = proxy->start(daemon.runtime().executor()); !started) return command.fail(started.error().message);
    for (auto port : proxy->bound_ports()) fmt::print("dstack-gateway: proxy listening on tcp:{}:{}\n", settings.proxy_host, port);
    gateway->attach_proxy(std::move(proxy));

    net::http::ServerOptions rpc;
    rpc.limits.max_body_bytes = 1024 * 1024;
    if (!settings.tls_cert_file.empty() || !settings.rpc_domain.empty()) {
        auto tls = rpc_tls_context(settings);
        if (!tls) return command.fail(tls.error().context("RPC certificate").message);
        if (auto listened = daemon.listen_tls({settings.rpc_address}, gateway::rpc_service(gateway), rpc, *tls); !listened)
            return command.fail(listened.error().message);
    } else {
        log::warn("no --tls-cert or --rpc-domain: the RPC is plain HTTP and RegisterCvm refuses every caller (it needs a client certificate)");
        if (auto listened = daemon.listen({settings.rpc_address}, gateway::rpc_service(gateway), rpc); !listened)
            return command.fail(listened.error().message);
    }
    if (!settings.admin_address.empty()) {
        net::http::ServerOptions admin;
        admin.limits.max_body_bytes = 256 * 1024;
        if (auto listened = daemon.listen({settings.admin_address}, gateway::admin_service(gateway), admin); !listened)
            return command.fail(listened.error().message);
    }
    if (!settings.debug_address.empty()) {
        log::warn("the debug API is on: anyone who reaches {} registers CVMs without attestation", settings.debug_address);
        net::http::ServerOptions debug;
        debug.limits.max_body_bytes = 64 * 1024;
        if (auto listened = daemon.listen({settings.debug_address}, gateway::debug_service(gateway), debug); !listened)
            return command.fail(listened.error().message);
    }
    gateway->start_background(daemon.runtime().executor());
    int status = daemon.serve();
    gateway->stop();
    return status;
}

int certbot_main(std::string_view, int argc, char** argv) { return gateway::gateway_certbot_main(argc, argv); }
int register_main(std::string_view, int argc, char** argv) { return gateway::gateway_register_main(argc, argv); }

}  // namespace

int gateway_main(int argc, char** argv) {
    static constexpr Subcommand subcommands[] = {{"certbot", certbot_main}, {"register", register_main}, {"serve", serve_main}};
    bool serve_by_default = argc > 1 && argv[1][0] == '-' && std::string_view(argv[1]) != "-h" &&
                            std::string_view(argv[1]) != "--help" && std::string_view(argv[1]) != "--version";
    return run_subcommand("gateway", usage, subcommands, serve_by_default ? serve_main : nullptr, argc, argv);
}

}  // namespace dstack::applets
