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
#include <asio/co_spawn.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include "certificate-store.hpp"
#include "dstack/app/acme-client.hpp"
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
    // Admin.SetNodeStatus: a node marked down is left out of RegisterCvm's server lists and
    // refuses registrations itself (§11.2).
    asio::awaitable<Result<void>> set_node_status(std::uint32_t id, bool down);
    // Admin.ReloadCert: every certificate again from the store (the static file stays).
    asio::awaitable<Result<std::size_t>> reload_certificates();
    NodeInfo self() const;

    // The domain CVMs are told to use, and its public port (§9.7 item 4).
    std::string base_domain() const { return settings_.base_domain; }
    bool wireguard_available() const { return wireguard_ok_.load(); }

    // ACME (gateway-acme.cpp): issues a certificate for the base domain when it has none from
    // ACME or it expires within acme_renew_before (always with `force`), under the store's lock.
    // True when this node issued one.
    asio::awaitable<Result<bool>> renew_certificate(asio::any_io_executor executor, bool force);
    std::string acme_account_url() const;

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
    asio::awaitable<Result<app::AcmeAccount>> acme_account(asio::any_io_executor executor);
    asio::awaitable<Result<void>> issue_and_store(asio::any_io_executor executor);
    static asio::awaitable<void> acme_loop(Gateway* self, asio::any_io_executor executor);
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
    mutable std::mutex acme_mutex_;
    std::string acme_account_url_;
    asio::any_io_executor executor_;
};

namespace detail {
template <typename T>
asio::awaitable<std::optional<T>> as_optional(asio::awaitable<T> operation) {
    co_return std::optional<T>(co_await std::move(operation));
}
}  // namespace detail

template <typename T>
asio::awaitable<T> Gateway::on_store(asio::awaitable<T> operation) {
    // Through an optional: co_spawn's result must be default-constructible, Result is not.
    auto result = co_await asio::co_spawn(*store_strand_, detail::as_optional(std::move(operation)), asio::use_awaitable);
    co_return std::move(*result);
}

}  // namespace dstack::applets::gateway
