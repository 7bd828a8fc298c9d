// What `dstack gateway serve` runs with: upstream's gateway.toml keys (spec/gateway.md §2) that this
// build honours, and our flags. Durations are milliseconds; addresses as net::listen_address takes them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace dstack::applets::gateway {

struct ProxyTimeouts {
    ProxyTimeouts() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)

    std::chrono::milliseconds connect{5'000};      // racing connect to the backends
    std::chrono::milliseconds handshake{5'000};    // ClientHello sniff, and the terminating handshake
    std::chrono::milliseconds pp_header{5'000};    // reading an inbound PROXY header
    std::chrono::milliseconds idle{600'000};       // no byte either way
    std::chrono::milliseconds total{5LL * 3600'000};  // a connection's whole life
    std::chrono::milliseconds dns_resolve{5'000};  // custom-domain TXT
    std::chrono::milliseconds cache_top_n{30'000};
    std::chrono::milliseconds handshake_stale{30LL * 60'000};
};

struct Settings {
    Settings() = default;

    // Main RPC (RegisterCvm, Info, AcmeInfo, GetPeers): HTTPS with the gateway's certificate.
    std::string rpc_address = "127.0.0.1:8010";
    std::string tls_key_file, tls_cert_file;  // [tls] key / certs (PEM, chain leaf first)
    std::string client_ca_file;               // [tls.mutual] ca_certs: the KMS root CA
    std::string rpc_domain;                   // [core.rpc_domain]: the RPC certificate from the agent
    // Admin API, dashboard and /metrics (plain HTTP, token required unless insecure_no_auth).
    std::string admin_address;  // empty: none
    std::string admin_token;    // secret: never logged
    bool admin_insecure_no_auth = false;
    // Debug API (RegisterCvm with given ids): only with insecure_enable_debug_rpc.
    std::string debug_address;

    // [core.proxy]
    std::string proxy_host = "0.0.0.0";
    std::vector<std::uint16_t> proxy_ports{8443};
    std::string base_domain;             // the platform's domain: <app_id>[-port][s|g].<base_domain>
    std::string cert_chain_file, cert_key_file;  // a static wildcard certificate for base_domain
    bool self_signed_fallback = true;    // ours: a self-signed *.base_domain when no certificate covers it
    std::vector<std::string> tls_versions{"1.2", "1.3"};
    bool inbound_pp_enabled = false;
    std::size_t max_connections_per_app = 2000;   // 0: no limit
    std::size_t max_connections_per_client = 256;  // ours: per client IP (IPv6 /64); 0: no limit
    std::size_t max_connections = 100'000;         // ours: the whole proxy
    int connect_top_n = 3;
    std::uint16_t agent_port = 8090;
    std::string app_address_ns_prefix = "_dstack-app-address";
    bool app_address_ns_compat = true;
    std::vector<std::string> app_address_dns_servers;
    std::uint16_t external_port = 443;   // what Info and RegisterCvm advertise for base_domain
    ProxyTimeouts timeouts;
    bool insecure_localhost_backend = false;  // [core.debug]: app id "localhost" = 127.0.0.1

    // ACME inside serve (ours; upstream configures its certbot through the admin API): a
    // certificate for *.base_domain from this directory, renewed `acme_renew_before` its expiry by
    // whichever node takes the store's lock; every node serves it.
    std::string acme_url;
    std::string acme_ca_file;             // trust for the ACME and Cloudflare APIs (default: system)
    std::string acme_challenge = "dns-01";  // or http-01 (no wildcard then: base_domain itself)
    std::string cloudflare_api_url, cloudflare_token_file;
    std::string http01_listen;
    std::chrono::milliseconds acme_renew_before{30LL * 86400'000};
    std::chrono::milliseconds acme_check_interval{3600'000};

    // [core.wg]
    std::string wg_interface = "wg0";
    std::string wg_uapi_socket;          // empty: /var/run/wireguard/<interface>.sock
    bool wg_enabled = true;              // false: no device is driven (tests of the data path alone)
    std::string wg_private_key, wg_public_key;  // base64; private is secret
    std::uint16_t wg_listen_port = 51820;
    std::string wg_ip = "10.0.0.1/24";
    std::vector<std::string> wg_reserved_net{"10.0.0.1/32"};
    std::string wg_client_ip_range = "10.0.0.0/25";
    std::string wg_endpoint = "10.0.2.2:51820";

    // [core.recycle]
    bool recycle_enabled = true;
    std::chrono::milliseconds recycle_interval{5 * 60'000};
    std::chrono::milliseconds recycle_timeout{10LL * 3600'000};

    // Where the shared state lives: a local file (one node) or etcd (a cluster).
    std::string data_dir = "/var/lib/dstack-gateway";
    std::vector<std::string> etcd_endpoints;
    std::string etcd_prefix = "/dstack-gateway/";
    std::uint32_t node_id = 1;
    std::string node_url;  // [core.sync] my_url

    std::string seal_key_file;  // 64 hex digits: seals certificate keys in the store (else from the agent)
    std::string agent_address;  // the guest agent (Info for /.dstack/app-info, quotes for AcmeInfo)
    int threads = 2;
};

}  // namespace dstack::applets::gateway
