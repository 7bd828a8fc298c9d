#include "self-identity.hpp"

#include <asio/this_coro.hpp>

namespace dstack::applets::kms {

Result<app::BootInfo> boot_info_of(const app::AttestedPeer& peer, std::string_view request_vm_config) {
    if (peer.app_info.app_id.size() != 20) return make_error("app_id must be 20 bytes");
    app::BootInfo info = app::make_boot_info(peer.app_info, peer.verdict.dcap.report->verdict);
    DSTACK_TRY(info.os_image_hash, app::decision_os_image_hash(peer, request_vm_config));
    return info;
}

asio::awaitable<Result<app::BootInfo>> own_boot_info(const app::AgentClient& agent, const app::Verifier& verifier) {
    auto executor = co_await asio::this_coro::executor;
    app::ReportData zeros{};
    auto attestation = co_await agent.attest(executor, zeros);
    if (!attestation) co_return std::move(attestation).take_error();
    auto evidence = tee::read_evidence(*attestation);
    if (!evidence) co_return evidence.error().context("the guest agent's attestation");
    auto peer = co_await app::verify_attested_peer(verifier, *evidence, false);
    if (!peer) co_return peer.error().context("the KMS's own attestation");
    // Upstream's GetAttestationInfo takes the VM configuration from the agent's Info.
    auto vm_config = co_await agent.vm_config(executor);
    if (!vm_config) co_return std::move(vm_config).take_error();
    co_return boot_info_of(*peer, *vm_config);
}

}  // namespace dstack::applets::kms
