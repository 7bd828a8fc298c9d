// One gateway node: the instances and certificates it serves, kept in the cluster store (a local
// file, or etcd shared by every node) and watched there, the WireGuard device it drives, and the
// background work (handshakes, expiry, the self-signed wildcard's renewal). The RPC, admin and
// proxy front ends (services.cpp, proxy.cpp) call into it.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/strand.hpp>

#include "certificate-store.hpp"
#include "dstack/app/agent-client.hpp"
#include "dstack/app/cluster-store.hpp"
#include "dstack/app/identity.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "instance-registry.hpp"
#include "settings.hpp"

namespace dstack::net {
class WireGuardDevice;
}

namespace dstack::applets::gateway {

class Proxy;

// A gateway node as CVMs and peers see it (RegisterCvm's servers and gateways).
struct NodeInfo {
    std::uint32_t id = 0;
    std::string uuid_hex;
    std::string url;
    std::string wg_public_key, wg_ip, wg_endpoint;
    UnixSeconds last_seen = 0;
    bool down = false;
};

struct RegisterOutcome {
    InstanceRecord record;
    std::vector<NodeInfo> nodes;
};

class Gateway {
public:
    static asio::awaitable<Result<std::shared_ptr<Gateway>>> create(Settings settings, asio::any_io_executor executor);
    ~Gateway();

    const Settings& settings() const { return settings_; }
    std::shared_ptr<CertificateStore> certificates() const { return certificates_; }
    std::shared_ptr<InstanceRegistry> registry() const { return registry_; }
    const app::ClusterStore& store() const { return *store_; }
    Proxy* proxy() const { return proxy_.get(); }
    void attach_proxy(std::unique_ptr<Proxy> proxy);
    const app::AgentClient* agent() const { return agent_ ? &*agent_ : nullptr; }
    bool keys_sealed() const { return !seal_key_.empty(); }

    // RegisterCvm for a verified identity (§4.1): persisted, WireGuard updated, nodes listed.
    asio::awaitable<Result<RegisterOutcome>> register_cvm(app::AppInfo identity, std::string public_key,
                                                          std::optional<PortPolicy> policy);
    asio::awaitable<Result<InstanceRecord>> set_admin_policy(std::string instance_id, std::optional<PortPolicy> policy);
    asio::awaitable<Result<void>> remove_instance(std::string instance_id);
    // A certificate from ACME or the operator, stored for every node (its key sealed).
    asio::awaitable<Result<void>> store_certificate(DomainCertificate certificate);
    std::vector<NodeInfo> nodes() const;
    NodeInfo self() const;

    // The domain CVMs are told to use, and its public port (§9.7 item 4).
    std::string base_domain() const { return settings_.base_domain; }
    bool wireguard_available() const { return wireguard_ok_.load(); }

    // Background work; each runs until stop().
    void start_background(asio::any_io_executor executor);
    void stop();

private:
    Gateway(Settings settings);
    asio::awaitable<Result<void>> load(asio::any_io_executor executor);
    asio::awaitable<Result<void>> ensure_self_signed(asio::any_io_executor executor);
    asio::awaitable<Result<void>> publish_self(asio::any_io_executor executor);
    asio::awaitable<void> sync_wireguard(asio::any_io_executor executor);
    asio::awaitable<void> refresh_handshakes(asio::any_io_executor executor);
    void on_instance_change(const app::StoreChange& change);
    void on_certificate_change(const app::StoreChange& change);
    void on_node_change(const app::StoreChange& change);
    Result<std::string> seal(ByteView secret) const;
    Result<Bytes> unseal(std::string_view sealed) const;
    std::string encode_certificate(const DomainCertificate& certificate) const;
    Result<DomainCertificate> decode_certificate(std::string_view key, std::string_view value) const;

    // The store is not thread-safe: every call runs on its strand (and its watches call back there).
    template <typename T>
    asio::awaitable<T> on_store(asio::awaitable<T> operation);

    Settings settings_;
    std::optional<asio::strand<asio::any_io_executor>> store_strand_;
    std::shared_ptr<CertificateStore> certificates_;
    std::shared_ptr<InstanceRegistry> registry_;
    std::shared_ptr<app::ClusterStore> store_;
    std::unique_ptr<Proxy> proxy_;
    std::optional<app::AgentClient> agent_;
    std::unique_ptr<net::WireGuardDevice> wireguard_;
    Bytes seal_key_;  // AES-256-GCM key for certificate keys in the store; secret
    std::atomic<bool> wireguard_ok_{false};
    std::atomic<bool> wireguard_dirty_{true};
    std::atomic<bool> stopped_{false};
    mutable std::mutex nodes_mutex_;
    std::map<std::uint32_t, NodeInfo> nodes_;
    std::string uuid_hex_;
    asio::any_io_executor executor_;
};

}  // namespace dstack::applets::gateway
