// What `dstack kms serve` runs with: upstream's kms.toml keys (spec/kms.md §6.5) and our flags.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace dstack::applets::kms {

struct Settings {
    Settings() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)

    std::string rpc_address = "0.0.0.0:8000";  // [rpc] address + port
    std::string cert_dir = "/etc/kms/certs";    // [core] cert_dir
    std::string agent_address;                  // the guest agent (AgentClient::default_address())
    bool enforce_self_authorization = true;     // [core] enforce_self_authorization
    bool attest_rpc_cert = true;                // [core] attest_rpc_cert
    std::string site_name;                      // [core] site_name

    // [core.attestation]: how client quotes are verified.
    std::optional<std::string> pccs_url;         // urls.pccs
    std::optional<std::string> collateral_file;  // ours: a collateral file instead of a PCCS
    std::optional<std::string> collateral_cache_dir;
    std::optional<std::string> trust_root;       // root_ca.tdx (needs insecure_allow_external_trust_anchors)
    std::vector<std::string> allowed_tcb_statuses{"UpToDate"};  // ours: the local floor before any policy

    // [core.auth_api]
    std::string auth_type = "webhook";  // webhook | policy | dev
    std::string webhook_url = "http://auth-api:8000";
    std::chrono::milliseconds webhook_timeout{10'000};
    std::string policy_file;
    std::string dev_gateway_app_id = "any";
    bool insecure_dev_auth = false;  // the command-line flag dev mode needs

    // [core.admin]
    std::string admin_address;  // empty: no admin listener
    std::string admin_token;    // secret
    bool admin_insecure_no_auth = false;

    bool metrics_enabled = true;  // [core.metrics] enabled

    // [core.onboard]
    bool onboard_enabled = true;
    std::string onboard_address = "0.0.0.0:8000";
    std::string auto_bootstrap_domain;

    // The OS image check upstream makes ([core.image] verify) is not implemented here: the
    // policy sees the CVM's own claim, and the start-up log says so.
    bool image_verify_requested = false;
    std::string image_cache_dir = "/usr/share/dstack/images";  // [core.image] cache_dir (Admin.ClearImageCache)

    int threads = 4;
};

}  // namespace dstack::applets::kms
