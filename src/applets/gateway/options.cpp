#include "options.hpp"

#include <charconv>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dstack/base/file.hpp"

namespace dstack::applets::gateway {
namespace {

Result<void> read_bool(const Config& file, std::string_view key, bool& target) {
    DSTACK_TRY(auto value, file.get_bool(key));
    if (value) target = *value;
    return {};
}

Result<void> read_string(const Config& file, std::string_view key, std::string& target) {
    DSTACK_TRY(auto value, file.get_string(key));
    if (value) target = *value;
    return {};
}

Result<void> read_duration(const Config& file, std::string_view key, std::chrono::milliseconds& target) {
    DSTACK_TRY(auto words, file.get_words(key));
    if (!words) return {};
    if (words->size() != 1) return make_error("{}: {}: one duration expected", file.origin(), key);
    auto parsed = parse_duration(words->front());
    if (!parsed) return make_error("{}: {}: {}", file.origin(), key, parsed.error().message);
    target = *parsed;
    return {};
}

template <typename T>
Result<void> read_uint(const Config& file, std::string_view key, T& target, std::uint64_t max) {
    DSTACK_TRY(auto value, file.get_int(key));
    if (!value) return {};
    if (*value < 0 || static_cast<std::uint64_t>(*value) > max) return make_error("{}: {}: {} is not 0 to {}", file.origin(), key, *value, max);
    target = static_cast<T>(*value);
    return {};
}

std::string trim(std::string text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    std::size_t start = 0;
    while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
    return text.substr(start);
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
    if (text.empty()) return make_error("empty duration");
    std::chrono::milliseconds total{0};
    std::size_t i = 0;
    bool any = false;
    while (i < text.size()) {
        std::uint64_t value = 0;
        auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), value);
        if (ec != std::errc() || end == text.data() + i) return make_error("{:?} is not a duration (e.g. 5s, 10m, 5h)", std::string(text));
        i = static_cast<std::size_t>(end - text.data());
        std::size_t unit_start = i;
        while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
        std::string_view unit = text.substr(unit_start, i - unit_start);
        std::uint64_t ms = 0;
        if (unit.empty() || unit == "s") ms = 1000;
        else if (unit == "ms") ms = 1;
        else if (unit == "m" || unit == "min") ms = 60'000;
        else if (unit == "h") ms = 3'600'000;
        else if (unit == "d") ms = 86'400'000;
        else return make_error("{:?}: unknown unit {:?} (ms, s, m, h, d)", std::string(text), std::string(unit));
        if (value > (1ULL << 40)) return make_error("{:?}: too long", std::string(text));
        total += std::chrono::milliseconds(value * ms);
        any = true;
        if (unit.empty() && i < text.size()) return make_error("{:?} is not a duration", std::string(text));
    }
    if (!any) return make_error("{:?} is not a duration", std::string(text));
    return total;
}

Result<std::vector<std::uint16_t>> parse_port_range(std::string_view text) {
    auto number = [](std::string_view part) -> Result<std::uint16_t> {
        unsigned value = 0;
        auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
        if (ec != std::errc() || end != part.data() + part.size() || value > 65535)
            return make_error("{:?} is not a port (0 to 65535)", std::string(part));
        return static_cast<std::uint16_t>(value);
    };
    auto dash = text.find('-');
    if (dash == std::string_view::npos) {
        DSTACK_TRY(auto port, number(text));
        return std::vector<std::uint16_t>{port};
    }
    DSTACK_TRY(auto first, number(text.substr(0, dash)));
    DSTACK_TRY(auto last, number(text.substr(dash + 1)));
    if (first > last) return make_error("port range {:?}: the start is after the end", std::string(text));
    if (last - first >= 1024) return make_error("port range {:?}: more than 1024 ports", std::string(text));
    std::vector<std::uint16_t> ports;
    for (unsigned p = first; p <= last; ++p) ports.push_back(static_cast<std::uint16_t>(p));
    return ports;
}

ServeOptions::ServeOptions(Command& command, Settings& settings) : settings_(settings), config_(command.cli()) {
    auto& cli = command.cli();
    cli.add_option("--listen", settings.rpc_address);
    config_.bind("tls.key", cli.add_option("--tls-key", settings.tls_key_file));
    config_.bind("tls.certs", cli.add_option("--tls-cert", settings.tls_cert_file));
    config_.bind("core.rpc_domain", cli.add_option("--rpc-domain", settings.rpc_domain));
    config_.bind("tls.mutual.ca_certs", cli.add_option("--client-ca", settings.client_ca_file));
    cli.add_option("--admin-listen", settings.admin_address);
    cli.add_option("--admin-token-file", admin_token_file_);
    cli.add_flag("--admin-insecure-no-auth", settings.admin_insecure_no_auth);
    cli.add_option("--debug-listen", settings.debug_address);
    cli.add_option("--proxy-listen", proxy_listen_);
    config_.bind("core.proxy.base_domain", cli.add_option("--base-domain", settings.base_domain));
    config_.bind("core.proxy.cert_chain", cli.add_option("--cert-chain", settings.cert_chain_file));
    config_.bind("core.proxy.cert_key", cli.add_option("--cert-key", settings.cert_key_file));
    cli.add_flag("--no-self-signed", no_self_signed_);
    config_.bind("core.proxy.inbound_pp_enabled", cli.add_flag("--inbound-proxy-protocol", settings.inbound_pp_enabled));
    config_.bind("core.proxy.max_connections_per_app",
                 cli.add_option("--max-connections-per-app", settings.max_connections_per_app));
    cli.add_option("--max-connections-per-client", settings.max_connections_per_client);
    cli.add_option("--max-connections", settings.max_connections);
    config_.bind("core.proxy.external_port", cli.add_option("--external-port", settings.external_port));
    config_.bind("core.proxy.app_address_dns_servers", cli.add_option("--dns-server", settings.app_address_dns_servers));
    config_.bind("core.debug.insecure_localhost_backend",
                 cli.add_flag("--insecure-localhost-backend", settings.insecure_localhost_backend));
    cli.add_option("--idle-timeout", idle_timeout_s_);
    cli.add_option("--handshake-timeout", handshake_timeout_s_);
    cli.add_option("--connect-timeout", connect_timeout_s_);
    cli.add_option("--total-timeout", total_timeout_s_);
    cli.add_option("--acme-url", settings.acme_url);
    cli.add_option("--acme-ca-file", settings.acme_ca_file);
    cli.add_option("--acme-challenge", settings.acme_challenge)->check(CLI::IsMember({"dns-01", "http-01"}));
    cli.add_option("--cloudflare-api-url", settings.cloudflare_api_url);
    cli.add_option("--cloudflare-token-file", settings.cloudflare_token_file);
    cli.add_option("--http01-listen", settings.http01_listen);
    cli.add_option("--acme-renew-before", acme_renew_before_);
    cli.add_option("--acme-check-interval", acme_check_interval_);
    config_.bind("core.wg.interface", cli.add_option("--wg-interface", settings.wg_interface));
    cli.add_option("--wg-uapi-socket", settings.wg_uapi_socket);
    cli.add_flag("--no-wireguard", no_wireguard_);
    config_.bind("core.wg.ip", cli.add_option("--wg-ip", settings.wg_ip));
    config_.bind("core.wg.reserved_net", cli.add_option("--wg-reserved-net", settings.wg_reserved_net));
    config_.bind("core.wg.client_ip_range", cli.add_option("--wg-client-range", settings.wg_client_ip_range));
    config_.bind("core.wg.endpoint", cli.add_option("--wg-endpoint", settings.wg_endpoint));
    config_.bind("core.wg.listen_port", cli.add_option("--wg-listen-port", settings.wg_listen_port));
    config_.bind("core.sync.data_dir", cli.add_option("--data-dir", settings.data_dir));
    cli.add_option("--etcd", settings.etcd_endpoints);
    cli.add_option("--etcd-prefix", settings.etcd_prefix);
    config_.bind("core.sync.node_id", cli.add_option("--node-id", settings.node_id));
    config_.bind("core.sync.my_url", cli.add_option("--node-url", settings.node_url));
    cli.add_option("--agent", settings.agent_address);
    cli.add_option("--seal-key-file", settings.seal_key_file);
    cli.add_option("--threads", settings.threads);
    for (auto key : {"address", "port", "core.admin.enabled", "core.admin.address", "core.admin.port", "core.admin.auth_token",
                     "core.admin.admin_token", "core.admin.insecure_no_auth", "core.debug.insecure_enable_debug_rpc",
                     "core.debug.address", "core.debug.port", "core.proxy.listen_addr", "core.proxy.listen_port",
                     "core.proxy.tls_versions", "core.proxy.connect_top_n", "core.proxy.agent_port",
                     "core.proxy.app_address_ns_prefix", "core.proxy.app_address_ns_compat",
                     "core.proxy.timeouts.connect", "core.proxy.timeouts.handshake", "core.proxy.timeouts.pp_header",
                     "core.proxy.timeouts.idle", "core.proxy.timeouts.total", "core.proxy.timeouts.dns_resolve",
                     "core.proxy.timeouts.cache_top_n", "core.proxy.timeouts.handshake_stale",
                     "core.wg.public_key", "core.wg.private_key", "core.recycle.enabled", "core.recycle.interval",
                     "core.recycle.timeout"}) {
        config_.accept(key);
    }
    for (auto key : {"workers", "max_blocking", "ident", "temp_dir", "keep_alive", "log_level"}) {
        config_.accept_unused(key, "Rocket's settings; see --threads and --log-level");
    }
    config_.accept_unused("core.set_ulimit", "the soft file limit is always raised to the hard one");
    config_.accept_unused("core.proxy.tls_crypto_provider", "TLS is mbedTLS");
    config_.accept_unused("core.proxy.buffer_size", "relay buffers grow from 4 KiB to 64 KiB by themselves");
    config_.accept_unused("core.proxy.workers", "see --threads");
    config_.accept_unused("core.proxy.thread_per_core", "see --threads");
    config_.accept_unused("core.proxy.connection_rebalance", "see --threads");
    config_.accept_unused("core.proxy.tcp_splice", "not in this build");
    config_.accept_unused("core.proxy.ktls", "not in this build");
    config_.accept_unused("core.proxy.port_policy_fetch.*", "not in this build: CVMs report their port policy");
    config_.accept_unused("core.proxy.timeouts.shutdown", "a half-close is bounded by the idle timeout");
    config_.accept_unused("core.proxy.timeouts.write", "unused upstream too (the idle timeout covers writes)");
    config_.accept_unused("core.proxy.timeouts.data_timeout_enabled", "the idle timeout always applies");
    config_.accept_unused("core.wg.config_path", "the device is driven through its UAPI socket, not a file");
    config_.accept_unused("core.recycle.node_timeout", "unused upstream too");
    config_.accept_unused("core.sync.enabled", "a cluster is several nodes on one etcd (--etcd)");
    config_.accept_unused("core.sync.interval", "etcd watches push changes");
    config_.accept_unused("core.sync.timeout", "etcd watches push changes");
    config_.accept_unused("core.sync.bootnode", "nodes find each other through etcd");
    config_.accept_unused("core.sync.persist_interval", "every change is stored when made");
    config_.accept_unused("core.sync.sync_connections_enabled", "not in this build");
    config_.accept_unused("core.sync.sync_connections_interval", "not in this build");
    config_.accept_unused("core.auth.*", "not in this build: the KMS authorizes apps");
    config_.accept_unused("core.attestation.*", "RegisterCvm trusts the KMS-signed app-info certificate");
}

Result<void> ServeOptions::apply_file(const Config& file) {
    auto& s = settings_;
    DSTACK_TRY(auto rpc, config_address(file, ""));
    (void)rpc;
    DSTACK_TRY(auto address, file.get_string("address"));
    DSTACK_TRY(auto port, file.get_int("port"));
    if ((address || port) && s.rpc_address == "127.0.0.1:8010") {
        if (port && (*port < 0 || *port > 65535)) return make_error("{}: port {} is not 0 to 65535", file.origin(), *port);
        std::string host = address.value_or("127.0.0.1");
        s.rpc_address = port ? fmt::format("{}:{}", host, *port) : (host.find(':') != std::string::npos ? host : host + ":8010");
    }
    bool admin = false;
    DSTACK_CHECK(read_bool(file, "core.admin.enabled", admin));
    DSTACK_TRY(auto admin_address, config_address(file, "core.admin"));
    if (admin && s.admin_address.empty()) s.admin_address = admin_address.value_or("127.0.0.1:8011");
    for (auto key : {"core.admin.auth_token", "core.admin.admin_token"}) {
        DSTACK_TRY(auto token, file.get_string(key));
        if (token && !trim(*token).empty() && s.admin_token.empty()) s.admin_token = trim(*token);
    }
    DSTACK_CHECK(read_bool(file, "core.admin.insecure_no_auth", s.admin_insecure_no_auth));
    bool debug = false;
    DSTACK_CHECK(read_bool(file, "core.debug.insecure_enable_debug_rpc", debug));
    DSTACK_TRY(auto debug_address, config_address(file, "core.debug"));
    if (debug && s.debug_address.empty()) s.debug_address = debug_address.value_or("127.0.0.1:8012");
    if (proxy_listen_.empty()) {
        DSTACK_CHECK(read_string(file, "core.proxy.listen_addr", s.proxy_host));
        DSTACK_TRY(auto words, file.get_words("core.proxy.listen_port"));
        if (words) {
            if (words->size() != 1) return make_error("{}: core.proxy.listen_port: a port or a range", file.origin());
            auto ports = parse_port_range(words->front());
            if (!ports) return make_error("{}: core.proxy.listen_port: {}", file.origin(), ports.error().message);
            s.proxy_ports = *ports;
        }
    }
    DSTACK_TRY(auto versions, file.get_string_array("core.proxy.tls_versions"));
    if (versions) s.tls_versions = *versions;
    DSTACK_TRY(auto top_n, file.get_int("core.proxy.connect_top_n"));
    if (top_n) s.connect_top_n = static_cast<int>(std::clamp<std::int64_t>(*top_n, 0, 64));
    DSTACK_CHECK(read_uint(file, "core.proxy.agent_port", s.agent_port, 65535));
    DSTACK_CHECK(read_string(file, "core.proxy.app_address_ns_prefix", s.app_address_ns_prefix));
    DSTACK_CHECK(read_bool(file, "core.proxy.app_address_ns_compat", s.app_address_ns_compat));
    auto& t = s.timeouts;
    DSTACK_CHECK(read_duration(file, "core.proxy.timeouts.connect", t.connect));
    DSTACK_CHECK(read_duration(file, "core.proxy.timeouts.handshake", t.handshake));
    DSTACK_CHECK(read_duration(file, "core.proxy.timeouts.pp_header", t.pp_header));
    DSTACK_CHECK(read_duration(file, "core.proxy.timeouts.idle", t.idle));
    DSTACK_CHECK(read_duration(file, "core.proxy.timeouts.total", t.total));
    DSTACK_CHECK(read_duration(file, "core.proxy.timeouts.dns_resolve", t.dns_resolve));
    DSTACK_CHECK(read_duration(file, "core.proxy.timeouts.cache_top_n", t.cache_top_n));
    DSTACK_CHECK(read_duration(file, "core.proxy.timeouts.handshake_stale", t.handshake_stale));
    DSTACK_CHECK(read_string(file, "core.wg.private_key", s.wg_private_key));
    DSTACK_CHECK(read_string(file, "core.wg.public_key", s.wg_public_key));
    DSTACK_CHECK(read_bool(file, "core.recycle.enabled", s.recycle_enabled));
    DSTACK_CHECK(read_duration(file, "core.recycle.interval", s.recycle_interval));
    DSTACK_CHECK(read_duration(file, "core.recycle.timeout", s.recycle_timeout));
    return {};
}

Result<void> ServeOptions::apply() {
    DSTACK_CHECK(config_.apply());
    auto& s = settings_;
    if (!proxy_listen_.empty()) {
        s.proxy_ports.clear();
        for (const auto& listen : proxy_listen_) {
            auto colon = listen.rfind(':');
            if (colon == std::string::npos) return make_error("--proxy-listen {:?}: HOST:PORT or HOST:FIRST-LAST", listen);
            s.proxy_host = listen.substr(0, colon);
            if (s.proxy_host.size() > 2 && s.proxy_host.front() == '[') s.proxy_host = s.proxy_host.substr(1, s.proxy_host.size() - 2);
            auto ports = parse_port_range(listen.substr(colon + 1));
            if (!ports) return make_error("--proxy-listen {:?}: {}", listen, ports.error().message);
            s.proxy_ports.insert(s.proxy_ports.end(), ports->begin(), ports->end());
        }
    }
    if (const Config* file = config_.config()) DSTACK_CHECK(apply_file(*file));
    if (idle_timeout_s_) s.timeouts.idle = std::chrono::seconds(*idle_timeout_s_);
    if (handshake_timeout_s_) s.timeouts.handshake = std::chrono::seconds(*handshake_timeout_s_);
    if (connect_timeout_s_) s.timeouts.connect = std::chrono::seconds(*connect_timeout_s_);
    if (total_timeout_s_) s.timeouts.total = std::chrono::seconds(*total_timeout_s_);
    for (auto timeout : {s.timeouts.idle, s.timeouts.handshake, s.timeouts.connect, s.timeouts.total, s.timeouts.pp_header}) {
        if (timeout.count() <= 0) return make_error("timeouts must be positive");
    }
    if (acme_renew_before_) {
        DSTACK_TRY(s.acme_renew_before, parse_duration(*acme_renew_before_));
    }
    if (acme_check_interval_) {
        DSTACK_TRY(s.acme_check_interval, parse_duration(*acme_check_interval_));
    }
    if (s.acme_check_interval.count() < 1000) return make_error("--acme-check-interval: at least 1s");
    if (!s.acme_url.empty()) {
        if (s.base_domain.empty()) return make_error("--acme-url needs --base-domain");
        if (s.acme_challenge == "dns-01" && s.cloudflare_token_file.empty())
            return make_error("--acme-challenge dns-01 needs --cloudflare-token-file");
        if (s.acme_challenge == "http-01" && s.http01_listen.empty())
            return make_error("--acme-challenge http-01 needs --http01-listen");
    }
    if (no_wireguard_) s.wg_enabled = false;
    if (no_self_signed_) s.self_signed_fallback = false;
    if (!admin_token_file_.empty()) {
        DSTACK_TRY(auto token, read_text_file(admin_token_file_, 4096));
        s.admin_token = trim(token);
    }
    if (s.admin_token.empty()) {
        for (auto name : {"DSTACK_GATEWAY_ADMIN_TOKEN", "ADMIN_API_TOKEN"}) {
            if (const char* env = std::getenv(name); env && *env) {
                s.admin_token = trim(env);
                break;
            }
        }
    }
    if (!s.admin_address.empty() && s.admin_token.empty() && !s.admin_insecure_no_auth) {
        return make_error("the admin listener needs a token (--admin-token-file, core.admin.auth_token or "
                          "$DSTACK_GATEWAY_ADMIN_TOKEN), or --admin-insecure-no-auth");
    }
    if (s.tls_cert_file.empty() != s.tls_key_file.empty()) return make_error("give --tls-cert and --tls-key together");
    if (s.cert_chain_file.empty() != s.cert_key_file.empty()) return make_error("give --cert-chain and --cert-key together");
    if (s.node_id == 0) return make_error("--node-id: must be greater than 0");
    if (s.threads < 1 || s.threads > 64) return make_error("--threads: 1 to 64");
    if (s.proxy_ports.empty()) return make_error("no proxy port to listen on");
    return {};
}

}  // namespace dstack::applets::gateway
