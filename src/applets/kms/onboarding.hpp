// How a KMS gets its root keys (spec/kms.md §6.1-§6.2): bootstrap (fresh keys, attested with the
// report data verifiers recompute) or onboarding (a copy of an existing KMS's keys over RA-TLS),
// and the certificates every start re-issues (§6.4 item 4).
#pragma once

#include <string>

#include <asio/awaitable.hpp>

#include "dstack/app/agent-client.hpp"
#include "dstack/app/kms-authorization.hpp"
#include "dstack/app/kms-key-directory.hpp"
#include "dstack/app/verifier.hpp"
#include "settings.hpp"

namespace dstack::applets::kms {

struct KeySource {
    KeySource() = default;
    const Settings* settings = nullptr;
    const app::AgentClient* agent = nullptr;
    const app::Verifier* verifier = nullptr;
    app::KmsAuthorizer* authorizer = nullptr;
};

// Fresh root keys for `domain`, with their bootstrap attestation (when attest) and the RPC
// certificate; nothing is written.
asio::awaitable<Result<app::KmsKeys>> bootstrap_keys(const KeySource& source, std::string domain, bool attest);

// The root keys of the KMS at source_url, every epoch (spec §6.2, with the gap upstream leaves
// closed: the source's attestation is verified on both connections, the second pinned to the
// first's key). The receiver's own authorizer must allow the source (/bootAuth/kms).
asio::awaitable<Result<app::KmsKeys>> onboard_keys(const KeySource& source, std::string source_url, std::string domain);

// Start-up: a fresh RPC certificate (attested when the settings say so) and CA certificates
// re-issued when they expire within 365 days; written back to the key directory.
asio::awaitable<Result<app::KmsKeys>> refresh_certificates(const KeySource& source, app::KmsKeys keys);

// The KMS's own self-check before it bootstraps or onboards (upstream: "KMS is not allowed to bootstrap").
asio::awaitable<Result<void>> check_self_allowed(const KeySource& source, std::string_view what);

}  // namespace dstack::applets::kms
