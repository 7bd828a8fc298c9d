#include "status-report.hpp"

#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-writer.hpp"
#include "proxy.hpp"

namespace dstack::applets::gateway {
namespace {

std::string describe_policy(const std::optional<PortPolicy>& policy) {
    if (!policy) return "unknown (traffic denied)";
    if (!policy->restrict_mode) return "open";
    std::string out = "restricted:";
    for (const auto& [port, pp] : policy->ports) out += fmt::format(" {}{}", port, pp ? "(pp)" : "");
    return out;
}

void write_host(json::Writer& out, const HostStatus& host) {
    out.StartObject();
    json::key(out, "instance_id");
    json::string(out, host.instance_id);
    json::key(out, "ip");
    json::string(out, host.ip);
    json::key(out, "app_id");
    json::string(out, host.app_id);
    json::key(out, "base_domain");
    json::string(out, host.base_domain);
    json::key(out, "port");
    out.Uint(host.external_port);
    json::key(out, "latest_handshake");
    out.Int64(host.latest_handshake);
    json::key(out, "num_connections");
    out.Uint64(host.num_connections);
    json::key(out, "reg_time");
    out.Int64(host.reg_time);
    json::key(out, "port_policy");
    json::string(out, host.port_policy);
    json::key(out, "port_policy_source");
    json::string(out, host.policy_source);
    json::key(out, "node_id");
    out.Uint(host.node_id);
    out.EndObject();
}

void write_policy_object(json::Writer& out, const PortPolicy& policy) {
    out.StartObject();
    json::key(out, "ports");
    out.StartArray();
    for (const auto& [port, pp] : policy.ports) {
        out.StartObject();
        json::key(out, "port");
        out.Uint(port);
        json::key(out, "pp");
        out.Bool(pp);
        out.EndObject();
    }
    out.EndArray();
    json::key(out, "restrict_mode");
    out.Bool(policy.restrict_mode);
    out.EndObject();
}

// Prometheus label values: backslash, quote and newline escaped.
std::string label(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

}  // namespace

StatusReport collect_status(const Gateway& gateway) {
    StatusReport report;
    report.now = system_now();
    report.self = gateway.self();
    report.nodes = gateway.nodes();
    report.store = gateway.store().description();
    report.wireguard_up = gateway.wireguard_available();
    report.keys_sealed = gateway.keys_sealed();
    const auto& registry = *gateway.registry();
    for (const auto& record : registry.all()) {
        HostStatus host;
        host.instance_id = record.instance_id;
        host.app_id = record.app_id;
        host.ip = record.ip;
        host.base_domain = gateway.base_domain();
        host.external_port = gateway.settings().external_port;
        host.latest_handshake = registry.last_handshake(record.instance_id);
        host.reg_time = record.reg_time;
        host.num_connections = registry.connections(record.instance_id);
        host.port_policy = describe_policy(effective_policy(record));
        host.policy_source = record.admin_port_policy ? "admin" : record.port_policy ? "instance" : "none";
        host.node_id = record.node_id;
        report.instances.push_back(std::move(host));
    }
    report.certificates = gateway.certificates()->served();
    if (const Proxy* proxy = gateway.proxy()) {
        const auto& c = proxy->counters();
        auto& p = report.proxy;
        p.accepted = c.accepted;
        p.active = c.active;
        p.terminated = c.terminated;
        p.passed_through = c.passed_through;
        p.special = c.special;
        p.refused_limit = c.refused_limit;
        p.refused_route = c.refused_route;
        p.refused_hello = c.refused_hello;
        p.refused_backend = c.refused_backend;
        p.handshake_failures = c.handshake_failures;
        p.idle_timeouts = c.idle_timeouts;
        p.bytes_received = c.bytes_received;
        p.bytes_sent = c.bytes_sent;
    }
    return report;
}

std::string host_json(const HostStatus& host) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    write_host(out, host);
    return buffer.GetString();
}

std::string status_json(const StatusReport& report) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "id");
    out.Uint(report.self.id);
    json::key(out, "url");
    json::string(out, report.self.url);
    json::key(out, "uuid");
    json::string(out, report.self.uuid_hex);
    json::key(out, "num_connections");
    out.Uint64(report.proxy.active);
    json::key(out, "hosts");
    out.StartArray();
    for (const auto& host : report.instances) write_host(out, host);
    out.EndArray();
    json::key(out, "nodes");
    out.StartArray();
    for (const auto& node : report.nodes) {
        out.StartObject();
        json::key(out, "id");
        out.Uint(node.id);
        json::key(out, "uuid");
        json::string(out, node.uuid_hex);
        json::key(out, "url");
        json::string(out, node.url);
        json::key(out, "last_seen");
        out.Int64(node.last_seen);
        json::key(out, "wg_public_key");
        json::string(out, node.wg_public_key);
        json::key(out, "wg_ip");
        json::string(out, node.wg_ip);
        json::key(out, "wg_endpoint");
        json::string(out, node.wg_endpoint);
        json::key(out, "status");
        json::string(out, node.down ? "down" : "up");
        out.EndObject();
    }
    out.EndArray();
    json::key(out, "certificates");
    out.StartArray();
    for (const auto& certificate : report.certificates) {
        out.StartObject();
        json::key(out, "domain");
        json::string(out, certificate.domain);
        json::key(out, "source");
        json::string(out, source_name(certificate.source));
        json::key(out, "self_signed");
        out.Bool(certificate.self_signed);
        json::key(out, "not_before");
        out.Int64(certificate.not_before);
        json::key(out, "not_after");
        out.Int64(certificate.not_after);
        json::key(out, "issuer");
        json::string(out, certificate.issuer);
        json::key(out, "serial");
        json::string(out, certificate.serial_hex);
        json::key(out, "sha256");
        json::string(out, certificate.sha256_hex);
        out.EndObject();
    }
    out.EndArray();
    json::key(out, "store");
    json::string(out, report.store);
    json::key(out, "wireguard_up");
    out.Bool(report.wireguard_up);
    json::key(out, "certificate_keys_sealed");
    out.Bool(report.keys_sealed);
    out.EndObject();
    return buffer.GetString();
}

std::string metrics_text(const StatusReport& report) {
    std::string out;
    auto counter = [&](std::string_view name, std::string_view help, std::uint64_t value) {
        out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, value);
    };
    auto gauge = [&](std::string_view name, std::string_view help, std::uint64_t value) {
        out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, value);
    };
    const auto& p = report.proxy;
    counter("dstack_gateway_connections_accepted_total", "Connections accepted on the proxy ports.", p.accepted);
    gauge("dstack_gateway_connections_active", "Proxy connections open now.", p.active);
    counter("dstack_gateway_connections_terminated_total", "Connections whose TLS the gateway terminated.", p.terminated);
    counter("dstack_gateway_connections_passthrough_total", "Connections passed through untouched.", p.passed_through);
    counter("dstack_gateway_connections_own_total", "Connections to the gateway's own names.", p.special);
    out += "# HELP dstack_gateway_connections_refused_total Connections refused, by reason.\n"
           "# TYPE dstack_gateway_connections_refused_total counter\n";
    out += fmt::format("dstack_gateway_connections_refused_total{{reason=\"limit\"}} {}\n", p.refused_limit);
    out += fmt::format("dstack_gateway_connections_refused_total{{reason=\"route\"}} {}\n", p.refused_route);
    out += fmt::format("dstack_gateway_connections_refused_total{{reason=\"client_hello\"}} {}\n", p.refused_hello);
    out += fmt::format("dstack_gateway_connections_refused_total{{reason=\"backend\"}} {}\n", p.refused_backend);
    counter("dstack_gateway_tls_handshake_failures_total", "Terminating TLS handshakes that failed.", p.handshake_failures);
    counter("dstack_gateway_idle_timeouts_total", "Connections closed after the idle timeout.", p.idle_timeouts);
    counter("dstack_gateway_received_bytes_total", "Bytes relayed from clients.", p.bytes_received);
    counter("dstack_gateway_sent_bytes_total", "Bytes relayed to clients.", p.bytes_sent);
    gauge("dstack_gateway_instances", "Registered CVM instances.", report.instances.size());
    gauge("dstack_gateway_nodes", "Gateway nodes known.", report.nodes.size());
    gauge("dstack_gateway_wireguard_up", "1 when the WireGuard device is configured.", report.wireguard_up ? 1 : 0);
    out += "# HELP dstack_gateway_certificate_expiry_seconds When the served certificate expires (Unix time), by domain "
           "and source.\n# TYPE dstack_gateway_certificate_expiry_seconds gauge\n";
    for (const auto& certificate : report.certificates) {
        out += fmt::format("dstack_gateway_certificate_expiry_seconds{{domain=\"{}\",source=\"{}\"}} {}\n",
                           label(certificate.domain), source_name(certificate.source), certificate.not_after);
    }
    out += "# HELP dstack_gateway_certificate_self_signed 1 when the certificate served for the domain is self-signed.\n"
           "# TYPE dstack_gateway_certificate_self_signed gauge\n";
    for (const auto& certificate : report.certificates) {
        out += fmt::format("dstack_gateway_certificate_self_signed{{domain=\"{}\"}} {}\n", label(certificate.domain),
                           certificate.self_signed ? 1 : 0);
    }
    return out;
}

std::string acme_info_json(const Gateway& gateway) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "account_uri");
    json::string(out, gateway.acme_account_url());
    // ct_monitor still reads the field upstream removed (spec/gateway.md §14.2).
    json::key(out, "hist_keys");
    out.StartArray();
    out.EndArray();
    json::key(out, "quoted_hist_keys");
    out.StartArray();
    for (const auto& certificate : gateway.certificates()->served()) {
        if (certificate.source != CertificateSource::acme) continue;
        out.StartObject();
        json::key(out, "public_key");
        json::string(out, hex_encode(certificate.public_key_der));
        json::key(out, "quote");
        json::string(out, certificate.quote_json);
        json::key(out, "attestation");
        json::string(out, "");
        out.EndObject();
    }
    out.EndArray();
    json::key(out, "account_quote");
    json::string(out, "");
    json::key(out, "account_attestation");
    json::string(out, "");
    out.EndObject();
    return buffer.GetString();
}

std::string port_policy_report_json(const InstanceRecord& record) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    const auto& effective = effective_policy(record);
    json::key(out, "effective");
    if (effective) write_policy_object(out, *effective); else out.Null();
    json::key(out, "source");
    json::string(out, record.admin_port_policy ? "admin" : record.port_policy ? "instance" : "none");
    json::key(out, "instance_reported");
    if (record.port_policy) write_policy_object(out, *record.port_policy); else out.Null();
    json::key(out, "admin_override");
    if (record.admin_port_policy) write_policy_object(out, *record.admin_port_policy); else out.Null();
    out.EndObject();
    return buffer.GetString();
}

}  // namespace dstack::applets::gateway
