// The CVM instances a gateway routes to (spec/gateway.md §3.9, §3.10, §4.1, §6.2, §8): who they
// are, their WireGuard address and key, their port policy, and which of an app's instances get
// the next connection. Shared by every node through the cluster store (records as JSON, below);
// this class is the in-memory view one node serves from. Thread-safe; asio-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/app/wireguard-config.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"

namespace dstack::applets::gateway {

struct PortPolicy {
    std::map<std::uint16_t, bool> ports;  // port → send a PROXY header
    bool restrict_mode = false;           // false: every port is open
    bool operator==(const PortPolicy&) const = default;
};

struct InstanceRecord {
    std::string instance_id, app_id;  // lowercase hex
    std::string ip;                   // the WireGuard address, "10.0.0.2"
    std::string public_key;           // WireGuard, base64
    UnixSeconds reg_time = 0;
    std::optional<PortPolicy> port_policy;  // as the instance reported it
    std::string port_policy_hash;           // the compose hash it was reported for
    std::optional<PortPolicy> admin_port_policy;  // the operator's override
    std::uint32_t node_id = 0;              // the gateway node that registered it
    bool operator==(const InstanceRecord&) const = default;
};

std::string encode_instance(const InstanceRecord& record);
Result<InstanceRecord> decode_instance(std::string_view json);  // strict; errors name the field

// The policy in force: the operator's override, else the instance's own.
const std::optional<PortPolicy>& effective_policy(const InstanceRecord& record);

struct Backend {
    std::string instance_id;
    std::string ip;
    std::optional<PortPolicy> policy;                // effective
    std::shared_ptr<std::atomic<std::uint64_t>> connections;  // live connections to it (this node)
};

struct Selection {
    std::vector<Backend> backends;  // candidates to race, most recently seen first
    std::string app_id;
};

class InstanceRegistry {
public:
    explicit InstanceRegistry(app::WgNetworkConfig network, std::uint32_t node_id);

    struct Registration {
        InstanceRecord record;
        bool changed = false;  // worth persisting and reconfiguring WireGuard
    };
    // RegisterCvm (§4.1 steps 3-6): idempotent for an unchanged instance (same IP, same time).
    Result<Registration> register_instance(std::string app_id, std::string instance_id, std::string compose_hash,
                                           std::string public_key, std::optional<PortPolicy> policy, UnixSeconds now);
    // A record another node wrote (or this node, read back at start): taken when new or newer.
    // Returns whether anything changed.
    bool apply(const InstanceRecord& record);
    bool remove(const std::string& instance_id);
    void clear();
    Result<InstanceRecord> set_admin_policy(const std::string& instance_id, std::optional<PortPolicy> policy);

    std::optional<InstanceRecord> find(const std::string& instance_id) const;
    std::vector<InstanceRecord> all() const;  // sorted by instance id
    std::size_t size() const;
    std::uint64_t connections(const std::string& instance_id) const;

    // WireGuard's latest handshakes, by public key (unix seconds; 0 never).
    void set_handshakes(std::map<std::string, UnixSeconds> handshakes, bool available);
    UnixSeconds last_handshake(const std::string& instance_id) const;

    // §3.9: an instance id names that instance; an app id its healthiest `top_n` instances
    // (handshake within `stale`), cached for `cache_ttl` seconds. Errors: "app not found".
    Result<Selection> select(const std::string& id, int top_n, UnixSeconds now, UnixSeconds stale, UnixSeconds cache_ttl);

    // Instances registered before `cutoff` whose last handshake is also before it (§8).
    std::vector<std::string> expired(UnixSeconds cutoff) const;

private:
    struct Entry {
        InstanceRecord record;
        std::shared_ptr<std::atomic<std::uint64_t>> connections = std::make_shared<std::atomic<std::uint64_t>>(0);
    };
    struct CachedSelection {
        std::vector<std::string> instance_ids;
        UnixSeconds made = 0;
    };
    void index(const std::string& app_id, const std::string& instance_id);
    void unindex(const std::string& app_id, const std::string& instance_id);
    void forget(const std::string& instance_id);  // from instances_, apps_, ips_ and keys_
    Backend backend_of(const Entry& entry) const;
    UnixSeconds handshake_of(const Entry& entry) const;

    app::WgNetworkConfig network_;
    std::uint32_t node_id_;
    mutable std::mutex mutex_;
    std::map<std::string, Entry> instances_;
    std::map<std::string, std::set<std::string>> apps_;
    std::map<std::string, CachedSelection> top_n_;
    std::map<std::string, UnixSeconds> handshakes_;
    // Indexes kept with instances_ so that a registration costs log n, not a scan of every instance.
    std::set<std::string> ips_;
    std::map<std::string, std::string> keys_;  // WireGuard public key -> instance id
    std::string last_allocated_;
    bool handshakes_available_ = false;
};

}  // namespace dstack::applets::gateway
