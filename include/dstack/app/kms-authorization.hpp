// Who may boot: the KMS asks one authorizer about every app key release, KMS key handover and
// self-check (spec/kms.md §5). Three kinds, as `core.auth_api.type` names them:
//   webhook  upstream's auth API (auth-eth, auth-simple, auth-mock): POST <url>/bootAuth/{app,kms}
//   policy   auth-simple's JSON policy file, evaluated in-process (kms-policy.hpp)
//   dev      allows everything: development only
//
// Fail closed: an authorizer that cannot decide (webhook unreachable, slow, answering non-2xx or
// undecodable JSON) returns an error, and a caller MUST treat every error as a denial. Decisions
// are never cached: each check asks again, so a revocation takes effect on the next request.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <asio/awaitable.hpp>

#include "dstack/app/boot-info.hpp"
#include "dstack/app/kms-decision.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/tls.hpp"

namespace dstack::app {

class KmsAuthorizer {
public:
    virtual ~KmsAuthorizer() = default;
    // "webhook", "policy" or "dev" (GetMeta's is_dev is kind() == "dev").
    virtual std::string_view kind() const = 0;
    // The decision on `boot` for `target`; an error means "could not decide" and denies.
    virtual asio::awaitable<Result<KmsAuthDecision>> check(const BootInfo& boot, KmsAuthTarget target) = 0;
    // What GetMeta and GetAttestationInfo report (webhook: GET <url>).
    virtual asio::awaitable<Result<KmsAuthInfo>> info() = 0;
};

// The decision to act on: a check's error becomes a denial whose reason is the error.
KmsAuthDecision decision_or_denial(Result<KmsAuthDecision> checked);

struct WebhookOptions {
    WebhookOptions() = default;  // not an aggregate: see Endpoint in net/http-client.hpp

    std::string url = "http://auth-api:8000";  // upstream's default
    // One request, connect to last byte. upstream has none: a hung webhook hung key release.
    std::chrono::milliseconds timeout{10'000};
    std::size_t max_response_bytes = 64 * 1024;
    // For an https url: how the server is checked (ca_pem...). Unset: https is refused.
    std::optional<net::tls::ClientConfig> tls_config;
};

// The URL is checked now; an error names it.
Result<std::unique_ptr<KmsAuthorizer>> make_webhook_authorizer(WebhookOptions options);
// Loads the policy now (a missing or invalid file is an error naming the path); later changes to
// the file are picked up by the next check (kms-policy-file.hpp).
Result<std::unique_ptr<KmsAuthorizer>> make_policy_authorizer(const std::filesystem::path& path);
// Logs a warning that every CVM will be given keys.
std::unique_ptr<KmsAuthorizer> make_dev_authorizer(std::string gateway_app_id = "any");

// "<url>/bootAuth/app": a "/" is inserted only when `url` does not end with one (upstream's join).
std::string webhook_url(std::string_view base, KmsAuthTarget target);

}  // namespace dstack::app
