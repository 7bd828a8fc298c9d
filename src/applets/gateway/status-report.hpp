// One read of a node's state, and the forms it is shown in: Admin.Status (upstream's fields plus
// the certificates), /metrics (Prometheus text), AcmeInfo, and the dashboard (dashboard.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "certificate-store.hpp"
#include "gateway.hpp"
#include "instance-registry.hpp"

namespace dstack::applets::gateway {

struct HostStatus {
    std::string instance_id, app_id, ip, base_domain;
    std::uint16_t external_port = 0;
    UnixSeconds latest_handshake = 0, reg_time = 0;
    std::uint64_t num_connections = 0;
    std::string port_policy;  // "open", "restricted: 80, 443(pp)", "unknown (traffic denied)"
    std::string policy_source;  // admin | instance | none
    std::uint32_t node_id = 0;
};

struct ProxyStatus {
    std::uint64_t accepted = 0, active = 0, terminated = 0, passed_through = 0, special = 0;
    std::uint64_t refused_limit = 0, refused_route = 0, refused_hello = 0, refused_backend = 0;
    std::uint64_t handshake_failures = 0, idle_timeouts = 0, bytes_received = 0, bytes_sent = 0;
};

struct StatusReport {
    UnixSeconds now = 0;
    NodeInfo self;
    std::vector<NodeInfo> nodes;
    std::vector<HostStatus> instances;
    std::vector<DomainCertificate> certificates;  // the layer served for each domain
    ProxyStatus proxy;
    std::string store;
    bool wireguard_up = false;
    bool keys_sealed = false;
};

StatusReport collect_status(const Gateway& gateway);
std::string status_json(const StatusReport& report);
std::string host_json(const HostStatus& host);
std::string metrics_text(const StatusReport& report);
std::string acme_info_json(const Gateway& gateway);
std::string port_policy_report_json(const InstanceRecord& record);

}  // namespace dstack::applets::gateway
