// The KMS's built-in authorization policy: auth-simple's JSON configuration and its decision
// rules, so a single-node deployment needs no separate webhook service (spec/kms.md §5.4).
//
// Same file format and check order as auth-simple (both routes: tcbStatus in allowedTcbStatuses,
// every advisory in allowedAdvisoryIds, osImageHash in osImages; then KMS: mrAggregated in
// kms.mrAggregated, the device rule; app: app listed, composeHash listed, the device rule). The
// device rule is auth-simple's: any device when allowAnyDevice is true OR the device list is empty.
// Where we differ, we are stricter and say so at load time: hex values must be hex of the exact
// size (either case, optional 0x), unknown keys and wrong types are refused naming their JSON
// path, an app listed twice under two spellings is refused, and a missing or invalid file is an
// error instead of auth-simple's silent "deny everything" defaults. Our extension: per-app
// "keyEpoch": N.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/app/boot-info.hpp"
#include "dstack/app/kms-decision.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::app {

inline constexpr std::size_t max_kms_policy_bytes = 1024 * 1024;

struct KmsPolicy {
    struct DeviceRule {
        std::vector<Bytes> devices;  // 32-byte device ids
        bool allow_any_device = false;
    };
    struct App {
        Bytes app_id;  // 20 bytes
        std::vector<Bytes> compose_hashes;
        DeviceRule device;
        std::optional<std::uint64_t> key_epoch;
    };

    std::string gateway_app_id;
    std::string kms_contract_address = "0x0000000000000000000000000000000000000000";
    std::uint64_t chain_id = 0;
    std::string app_implementation = "0x0000000000000000000000000000000000000000";
    std::optional<std::string> eth_rpc_url;
    std::vector<Bytes> os_images;
    // auth-simple's default, and ours: only a fully patched platform.
    std::vector<std::string> allowed_tcb_statuses{"UpToDate"};
    std::vector<std::string> allowed_advisory_ids;
    std::vector<Bytes> kms_mr_aggregated;  // empty: no KMS may boot
    DeviceRule kms_device;
    std::vector<App> apps;
};

// Parses a policy document; errors name the JSON path ("$.apps[\"0x12\"].composeHashes[0]: ...").
Result<KmsPolicy> parse_kms_policy(std::string_view text);

// The decision for `boot`. A denial's reason starts with "policy <source>: " and names the rule,
// e.g. `policy /etc/kms/policy.json: tcbStatus "OutOfDate" is not in allowedTcbStatuses ["UpToDate"]`.
KmsAuthDecision evaluate_kms_policy(const KmsPolicy& policy, const BootInfo& boot, KmsAuthTarget target,
                                    std::string_view source);

// The policy's GET / answer, as auth-simple gives it.
KmsAuthInfo kms_policy_info(const KmsPolicy& policy);

}  // namespace dstack::app
