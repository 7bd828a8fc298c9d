#include "instance-registry.hpp"

#include <algorithm>
#include <limits>

#include <asio/ip/address_v4.hpp>
#include <fmt/format.h>

#include "dstack/base/json-reader.hpp"
#include "dstack/base/json-writer.hpp"

namespace dstack::applets::gateway {
namespace {

void write_policy(json::Writer& out, const PortPolicy& policy) {
    out.StartObject();
    json::key(out, "restrict_mode");
    out.Bool(policy.restrict_mode);
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
    out.EndObject();
}

Result<std::optional<PortPolicy>> read_policy(const json::Object& object, std::string_view key) {
    auto value = object.optional(key);
    if (!value || value->is_null()) return std::optional<PortPolicy>();
    DSTACK_TRY(auto fields, value->object());
    PortPolicy policy;
    DSTACK_TRY(policy.restrict_mode, fields.boolean("restrict_mode"));
    DSTACK_TRY(auto ports, fields.array("ports", 65535));
    for (std::size_t i = 0; i < ports.size(); ++i) {
        DSTACK_TRY(auto entry, ports[i].object());
        DSTACK_TRY(auto port, entry.uint_as<std::uint16_t>("port"));
        DSTACK_TRY(bool pp, entry.boolean("pp"));
        policy.ports[port] = pp;
    }
    return std::optional<PortPolicy>(std::move(policy));
}

// App and instance ids as RegisterCvm writes them: lowercase hex of at most 32 bytes.
Result<void> check_id(std::string_view what, std::string_view id) {
    bool hex = !id.empty() && id.size() <= 64 && id.size() % 2 == 0 &&
               std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    if (!hex) return make_error("{} {:?} is not lowercase hex of 1 to 32 bytes", what, std::string(id.substr(0, 80)));
    return {};
}

}  // namespace

std::string encode_instance(const InstanceRecord& record) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "instance_id");
    json::string(out, record.instance_id);
    json::key(out, "app_id");
    json::string(out, record.app_id);
    json::key(out, "ip");
    json::string(out, record.ip);
    json::key(out, "public_key");
    json::string(out, record.public_key);
    json::key(out, "reg_time");
    out.Int64(record.reg_time);
    json::key(out, "port_policy");
    if (record.port_policy) write_policy(out, *record.port_policy); else out.Null();
    json::key(out, "port_policy_hash");
    json::string(out, record.port_policy_hash);
    json::key(out, "admin_port_policy");
    if (record.admin_port_policy) write_policy(out, *record.admin_port_policy); else out.Null();
    json::key(out, "node_id");
    out.Uint(record.node_id);
    out.EndObject();
    return buffer.GetString();
}

Result<InstanceRecord> decode_instance(std::string_view text) {
    json::ReadLimits limits;
    limits.max_bytes = 1024 * 1024;
    limits.max_depth = 8;
    DSTACK_TRY(auto document, json::read_json(text, limits));
    DSTACK_TRY(auto object, document.root().object());
    InstanceRecord record;
    DSTACK_TRY(record.instance_id, object.string("instance_id"));
    DSTACK_TRY(record.app_id, object.string("app_id"));
    DSTACK_TRY(record.ip, object.string("ip"));
    DSTACK_TRY(record.public_key, object.string("public_key"));
    DSTACK_TRY(auto reg_time, object.uint_as<std::uint64_t>("reg_time"));
    record.reg_time = static_cast<UnixSeconds>(std::min<std::uint64_t>(reg_time, std::numeric_limits<std::int64_t>::max()));
    DSTACK_TRY(record.port_policy, read_policy(object, "port_policy"));
    DSTACK_TRY(record.port_policy_hash, object.string("port_policy_hash"));
    DSTACK_TRY(record.admin_port_policy, read_policy(object, "admin_port_policy"));
    DSTACK_TRY(record.node_id, object.uint_as<std::uint32_t>("node_id"));
    DSTACK_CHECK(check_id("instance id", record.instance_id));
    DSTACK_CHECK(check_id("app id", record.app_id));
    // The store is shared with other nodes: what reaches the WireGuard device and the proxy's
    // connect must be an address and a key, nothing else.
    asio::error_code ec;
    auto address = asio::ip::make_address_v4(record.ip, ec);
    if (ec || address.to_string() != record.ip) return make_error("instance record {}: ip {:?} is not an IPv4 address", record.instance_id, record.ip);
    DSTACK_CHECK(app::parse_wg_public_key(record.public_key));
    return record;
}

const std::optional<PortPolicy>& effective_policy(const InstanceRecord& record) {
    return record.admin_port_policy ? record.admin_port_policy : record.port_policy;
}

InstanceRegistry::InstanceRegistry(app::WgNetworkConfig network, std::uint32_t node_id)
    : network_(std::move(network)), node_id_(node_id) {}

void InstanceRegistry::index(const std::string& app_id, const std::string& instance_id) {
    apps_[app_id].insert(instance_id);
    top_n_.erase(app_id);
}

void InstanceRegistry::unindex(const std::string& app_id, const std::string& instance_id) {
    auto it = apps_.find(app_id);
    if (it != apps_.end()) {
        it->second.erase(instance_id);
        if (it->second.empty()) apps_.erase(it);
    }
    top_n_.erase(app_id);
}

void InstanceRegistry::forget(const std::string& instance_id) {
    auto it = instances_.find(instance_id);
    if (it == instances_.end()) return;
    const auto& record = it->second.record;
    unindex(record.app_id, instance_id);
    ips_.erase(record.ip);
    if (auto key = keys_.find(record.public_key); key != keys_.end() && key->second == instance_id) keys_.erase(key);
    instances_.erase(it);
}

Result<InstanceRegistry::Registration> InstanceRegistry::register_instance(std::string app_id, std::string instance_id,
                                                                           std::string compose_hash, std::string public_key,
                                                                           std::optional<PortPolicy> policy,
                                                                           UnixSeconds now) {
    if (app_id.empty()) return make_error("the client's app id is empty");
    if (instance_id.empty()) return make_error("the client's instance id is empty");
    DSTACK_CHECK(check_id("app id", app_id));
    DSTACK_CHECK(check_id("instance id", instance_id));
    if (policy) {
        for (const auto& [port, pp] : policy->ports) {
            if (port == 0) return make_error("port policy: port 0 is not 1 to 65535");
        }
    }
    DSTACK_CHECK(app::parse_wg_public_key(public_key));
    std::lock_guard lock(mutex_);
    if (auto owner = keys_.find(public_key); owner != keys_.end() && owner->second != instance_id) {
        return make_error("WireGuard public key is already used by another instance");
    }
    Registration out;
    auto it = instances_.find(instance_id);
    if (it != instances_.end()) {
        InstanceRecord& record = it->second.record;
        InstanceRecord before = record;
        if (record.app_id != app_id) return make_error("instance_id is already registered to a different app");
        if (record.public_key != public_key) {
            keys_.erase(record.public_key);
            keys_[public_key] = instance_id;
            record.public_key = public_key;
            record.reg_time = now;
        }
        if (record.port_policy_hash != compose_hash) {
            record.port_policy.reset();  // an upgraded app reports its new policy
            record.port_policy_hash = compose_hash;
        }
        if (policy) record.port_policy = std::move(policy);
        if (!app::wg_ip_is_valid(network_, record.ip)) {
            ips_.erase(record.ip);
            auto ip = app::allocate_wg_ip_after(network_, ips_, last_allocated_);
            if (!ip) return make_error("IP pool exhausted: {}", ip.error().message);
            record.ip = *ip;
            ips_.insert(record.ip);
            last_allocated_ = record.ip;
        }
        out.changed = !(record == before);
        if (out.changed) top_n_.erase(app_id);
        out.record = record;
        return out;
    }
    auto ip = app::allocate_wg_ip_after(network_, ips_, last_allocated_);
    if (!ip) return make_error("IP pool exhausted: {}", ip.error().message);
    ips_.insert(*ip);
    keys_[public_key] = instance_id;
    last_allocated_ = *ip;
    Entry entry;
    entry.record.instance_id = instance_id;
    entry.record.app_id = app_id;
    entry.record.ip = *ip;
    entry.record.public_key = std::move(public_key);
    entry.record.reg_time = now;
    entry.record.port_policy = std::move(policy);
    entry.record.port_policy_hash = std::move(compose_hash);
    entry.record.node_id = node_id_;
    out.record = entry.record;
    out.changed = true;
    instances_.emplace(instance_id, std::move(entry));
    index(app_id, instance_id);
    return out;
}

bool InstanceRegistry::apply(const InstanceRecord& record) {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(record.instance_id);
    std::shared_ptr<std::atomic<std::uint64_t>> connections;
    if (it != instances_.end()) {
        if (it->second.record == record) return false;
        if (record.reg_time < it->second.record.reg_time) return false;
        connections = it->second.connections;  // live connections keep counting
        forget(record.instance_id);
    }
    Entry entry;
    entry.record = record;
    if (connections) entry.connections = std::move(connections);
    instances_.emplace(record.instance_id, std::move(entry));
    index(record.app_id, record.instance_id);
    ips_.insert(record.ip);
    keys_[record.public_key] = record.instance_id;
    return true;
}

bool InstanceRegistry::remove(const std::string& instance_id) {
    std::lock_guard lock(mutex_);
    if (instances_.find(instance_id) == instances_.end()) return false;
    forget(instance_id);
    return true;
}

void InstanceRegistry::clear() {
    std::lock_guard lock(mutex_);
    instances_.clear();
    apps_.clear();
    top_n_.clear();
    ips_.clear();
    keys_.clear();
}

Result<InstanceRecord> InstanceRegistry::set_admin_policy(const std::string& instance_id, std::optional<PortPolicy> policy) {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(instance_id);
    if (it == instances_.end()) return make_error("instance {} not found", instance_id);
    it->second.record.admin_port_policy = std::move(policy);
    return it->second.record;
}

std::optional<InstanceRecord> InstanceRegistry::find(const std::string& instance_id) const {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(instance_id);
    if (it == instances_.end()) return std::nullopt;
    return it->second.record;
}

std::vector<InstanceRecord> InstanceRegistry::all() const {
    std::lock_guard lock(mutex_);
    std::vector<InstanceRecord> out;
    out.reserve(instances_.size());
    for (const auto& [id, entry] : instances_) out.push_back(entry.record);
    return out;
}

std::size_t InstanceRegistry::size() const {
    std::lock_guard lock(mutex_);
    return instances_.size();
}

std::uint64_t InstanceRegistry::connections(const std::string& instance_id) const {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(instance_id);
    return it == instances_.end() ? 0 : it->second.connections->load();
}

void InstanceRegistry::set_handshakes(std::map<std::string, UnixSeconds> handshakes, bool available) {
    std::lock_guard lock(mutex_);
    handshakes_ = std::move(handshakes);
    handshakes_available_ = available;
}

UnixSeconds InstanceRegistry::handshake_of(const Entry& entry) const {
    auto it = handshakes_.find(entry.record.public_key);
    return it == handshakes_.end() ? 0 : it->second;
}

UnixSeconds InstanceRegistry::last_handshake(const std::string& instance_id) const {
    std::lock_guard lock(mutex_);
    auto it = instances_.find(instance_id);
    return it == instances_.end() ? 0 : handshake_of(it->second);
}

Backend InstanceRegistry::backend_of(const Entry& entry) const {
    Backend backend;
    backend.instance_id = entry.record.instance_id;
    backend.ip = entry.record.ip;
    backend.policy = effective_policy(entry.record);
    backend.connections = entry.connections;
    return backend;
}

Result<Selection> InstanceRegistry::select(const std::string& id, int top_n, UnixSeconds now, UnixSeconds stale,
                                           UnixSeconds cache_ttl) {
    std::lock_guard lock(mutex_);
    Selection out;
    if (auto it = instances_.find(id); it != instances_.end()) {
        out.app_id = it->second.record.app_id;
        out.backends.push_back(backend_of(it->second));
        return out;
    }
    auto app = apps_.find(id);
    if (app == apps_.end()) return make_error("app not found: {}", id);
    out.app_id = id;
    auto cached = top_n_.find(id);
    if (cached != top_n_.end() && !cached->second.instance_ids.empty() && now - cached->second.made < cache_ttl) {
        for (const auto& instance_id : cached->second.instance_ids) {
            if (auto it = instances_.find(instance_id); it != instances_.end()) out.backends.push_back(backend_of(it->second));
        }
        if (!out.backends.empty()) return out;
    }
    // Healthy: a WireGuard handshake within `stale`. Without handshake data (no device), every
    // instance counts as healthy, in registration order.
    std::vector<std::pair<UnixSeconds, const Entry*>> healthy;
    for (const auto& instance_id : app->second) {
        const Entry& entry = instances_.at(instance_id);
        if (!handshakes_available_) {
            healthy.emplace_back(entry.record.reg_time, &entry);
            continue;
        }
        UnixSeconds seen = handshake_of(entry);
        if (seen != 0 && now - seen < stale) healthy.emplace_back(seen, &entry);
    }
    std::stable_sort(healthy.begin(), healthy.end(), [&](const auto& a, const auto& b) {
        return handshakes_available_ ? a.first > b.first : a.first < b.first;
    });
    std::size_t limit = top_n <= 0 ? 1 : static_cast<std::size_t>(top_n);
    CachedSelection cache;
    cache.made = now;
    for (std::size_t i = 0; i < healthy.size() && i < limit; ++i) {
        out.backends.push_back(backend_of(*healthy[i].second));
        cache.instance_ids.push_back(healthy[i].second->record.instance_id);
    }
    top_n_[id] = std::move(cache);
    return out;
}

std::vector<std::string> InstanceRegistry::expired(UnixSeconds cutoff) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [id, entry] : instances_) {
        UnixSeconds seen = std::max(entry.record.reg_time, handshake_of(entry));
        if (entry.record.reg_time < cutoff && seen < cutoff) out.push_back(id);
    }
    return out;
}

}  // namespace dstack::applets::gateway
