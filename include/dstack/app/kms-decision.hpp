// What a KMS authorizer answers (asio-free, so the policy evaluator can be fuzzed): the decision
// on one boot, and the authorizer's own description for GetMeta.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dstack::app {

// Which upstream route is asked: an app booting (/bootAuth/app) or a KMS instance booting,
// onboarding or checking itself (/bootAuth/kms).
enum class KmsAuthTarget { app, kms };

// "bootAuth/app" or "bootAuth/kms": the webhook path below its base URL.
constexpr std::string_view boot_auth_path(KmsAuthTarget target) {
    return target == KmsAuthTarget::kms ? "bootAuth/kms" : "bootAuth/app";
}

struct KmsAuthDecision {
    KmsAuthDecision() = default;  // not an aggregate: it travels out of coroutines (README, g++ 12)

    bool allowed = false;        // denied unless a rule said otherwise
    std::string reason;          // empty when allowed; otherwise which rule denied, and why
    std::string gateway_app_id;  // what the KMS hands to apps as their gateway's app id
    // Our extension (policy files only): which generation of the app's keys to derive. nullopt:
    // upstream's single, unversioned derivation.
    std::optional<std::uint64_t> key_epoch;
};

// upstream's GET <webhook> answer (GetMeta: gateway_app_id, kms_contract_address, chain_id,
// app_auth_implementation; GetAttestationInfo: eth_rpc_url). nullopt fields are reported as unset.
struct KmsAuthInfo {
    KmsAuthInfo() = default;

    std::string gateway_app_id;
    std::optional<std::string> kms_contract_address;
    std::optional<std::uint64_t> chain_id;
    std::optional<std::string> app_implementation;
    std::optional<std::string> eth_rpc_url;
};

}  // namespace dstack::app
