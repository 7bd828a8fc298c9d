// The KMS service's state and its methods (spec/kms.md §2): the root keys of every epoch, the
// verifier for callers' quotes, the authorizer, and the guest agent that attests the KMS itself.
// One Kms serves every connection of the daemon; it is immutable once made, except the metrics.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "dstack/app/agent-client.hpp"
#include "dstack/app/attested-peer.hpp"
#include "dstack/app/boot-info.hpp"
#include "dstack/app/kms-authorization.hpp"
#include "dstack/app/kms-key-directory.hpp"
#include "dstack/app/verifier.hpp"
#include "dstack/net/prpc.hpp"
#include "self-identity.hpp"
#include "settings.hpp"

namespace dstack::applets::kms {

struct Metrics {
    std::atomic<std::uint64_t> attestation_requests{0};  // upstream's two counters
    std::atomic<std::uint64_t> attestation_failures{0};
    std::atomic<std::uint64_t> keys_released{0};
    std::atomic<std::uint64_t> denials{0};
};

class Kms {
public:
    static Result<std::shared_ptr<Kms>> create(Settings settings, app::KmsKeys keys, std::shared_ptr<app::Verifier> verifier,
                                              std::shared_ptr<app::KmsAuthorizer> authorizer);

    const Settings& settings() const { return settings_; }
    const app::KmsKeys& keys() const { return keys_; }
    const app::Verifier& verifier() const { return *verifier_; }
    Metrics& metrics() const { return metrics_; }

    asio::awaitable<Result<net::prpc::Reply>> get_app_key(const net::prpc::Call& call) const;
    asio::awaitable<Result<net::prpc::Reply>> get_app_env_encrypt_pub_key(const net::prpc::Call& call) const;
    asio::awaitable<Result<net::prpc::Reply>> get_meta(const net::prpc::Call& call) const;
    asio::awaitable<Result<net::prpc::Reply>> get_kms_key(const net::prpc::Call& call) const;
    asio::awaitable<Result<net::prpc::Reply>> get_temp_ca_cert(const net::prpc::Call& call) const;
    asio::awaitable<Result<net::prpc::Reply>> sign_cert(const net::prpc::Call& call) const;

    std::string metrics_text() const;

private:
    explicit Kms(app::KmsKeys keys) : keys_(std::move(keys)) {}

    // The KMS's own identity, verified once (cached), then authorized on every call (decisions are
    // never cached: a revoked KMS stops at once).
    asio::awaitable<Result<void>> ensure_self_allowed() const;
    asio::awaitable<Result<app::BootInfo>> self_boot_info() const;
    // The caller's evidence from its client certificate (issued by our temp CA).
    Result<tee::Evidence> caller_evidence(const net::prpc::Call& call) const;
    asio::awaitable<Result<app::KmsAuthDecision>> authorize(const app::BootInfo& boot_info, app::KmsAuthTarget target) const;
    // Evidence verified and its boot info allowed by the policy: what every key release starts
    // from. Denials read "<who> not allowed: ...".
    struct Admitted {
        Admitted() = default;  // travels out of a coroutine (README: g++ 12 aggregate pitfall)
        app::AttestedPeer peer;
        app::BootInfo info;
        app::KmsAuthDecision decision;
    };
    asio::awaitable<Result<Admitted>> admit(const tee::Evidence& evidence, bool boot_time, std::string vm_config,
                                            app::KmsAuthTarget target) const;
    // The root keys of the epoch this app gets (its policy's, else the one first given).
    Result<const app::KmsRootKeys*> app_root(const Admitted& admitted) const;

    Settings settings_;
    app::KmsKeys keys_;
    std::shared_ptr<app::Verifier> verifier_;
    std::shared_ptr<app::KmsAuthorizer> authorizer_;
    std::shared_ptr<app::AppEpochRegistry> registry_;
    app::AgentClient agent_{""};
    mutable Metrics metrics_;
    mutable std::mutex self_mutex_;
    mutable std::optional<app::BootInfo> self_boot_info_;
};

}  // namespace dstack::applets::kms
