// The KMS's own identity, as policies see it (spec/kms.md §1.5): the guest agent attests 64 zero
// bytes, the KMS verifies that attestation like any caller's, and the boot info goes to
// /bootAuth/kms before the KMS hands out anything.
#pragma once

#include <string>

#include <asio/awaitable.hpp>

#include "dstack/app/agent-client.hpp"
#include "dstack/app/attested-peer.hpp"
#include "dstack/app/boot-info.hpp"
#include "dstack/app/verifier.hpp"

namespace dstack::applets::kms {

// The boot info a policy decides on, from a verified peer (spec/kms.md §1.4 item 3).
Result<app::BootInfo> boot_info_of(const app::AttestedPeer& peer, std::string_view request_vm_config);

// The KMS's own boot info through the agent (one Attest, verified).
asio::awaitable<Result<app::BootInfo>> own_boot_info(const app::AgentClient& agent, const app::Verifier& verifier);

}  // namespace dstack::applets::kms
