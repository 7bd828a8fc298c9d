// auth-simple's policy file, parsed strictly, and its decision rules in auth-simple's order.
#include "dstack/app/kms-policy.hpp"

#include <algorithm>
#include <initializer_list>

#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/base/json-reader.hpp"

namespace dstack::app {
namespace {

// 1 MiB of policy holds ~15,000 hex values; a list longer than this is a mistake, not a policy.
constexpr std::size_t max_list_items = 100'000;

// Unknown keys are refused: a misspelt key would otherwise silently fall back to its default.
Result<void> check_keys(const json::Value& value, const json::Object& object,
                        std::initializer_list<std::string_view> known) {
    for (const auto& member : value.raw().GetObject()) {
        std::string_view name(member.name.GetString(), member.name.GetStringLength());
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            std::string list;
            for (auto k : known) list += list.empty() ? std::string(k) : fmt::format(", {}", k);
            return make_error("{}: unknown key (known keys: {})", object.member_path(name), list);
        }
    }
    return {};
}

Result<std::vector<Bytes>> hex_list(const json::Object& object, std::string_view key, std::size_t size) {
    std::vector<Bytes> out;
    auto value = object.optional(key);
    if (!value) return out;
    DSTACK_TRY(auto array, value->array(max_list_items));
    for (std::size_t i = 0; i < array.size(); ++i) {
        DSTACK_TRY(auto bytes, array[i].hex(size));
        out.push_back(std::move(bytes));
    }
    return out;
}

Result<std::optional<std::vector<std::string>>> string_list(const json::Object& object, std::string_view key) {
    auto value = object.optional(key);
    if (!value) return std::optional<std::vector<std::string>>();
    DSTACK_TRY(auto array, value->array(max_list_items));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < array.size(); ++i) {
        DSTACK_TRY(auto text, array[i].string());
        out.push_back(std::move(text));
    }
    return std::optional<std::vector<std::string>>(std::move(out));
}

Result<bool> optional_bool(const json::Object& object, std::string_view key) {
    auto value = object.optional(key);
    if (!value) return false;
    return value->boolean();
}

Result<std::optional<std::string>> optional_string(const json::Object& object, std::string_view key) {
    auto value = object.optional(key);
    if (!value) return std::optional<std::string>();
    DSTACK_TRY(auto text, value->string());
    return std::optional<std::string>(std::move(text));
}

Result<KmsPolicy::DeviceRule> device_rule(const json::Object& object) {
    KmsPolicy::DeviceRule rule;
    DSTACK_TRY(rule.devices, hex_list(object, "devices", 32));
    DSTACK_TRY(rule.allow_any_device, optional_bool(object, "allowAnyDevice"));
    return rule;
}

Result<KmsPolicy::App> parse_app(const json::Value& value, std::string_view id_text) {
    KmsPolicy::App app;
    auto id = hex_decode(id_text);
    if (!id || id->size() != 20)
        return make_error("{}: the key must be a 20-byte app id in hex, got \"{}\"", value.path(), json_escape(id_text));
    app.app_id = std::move(*id);
    DSTACK_TRY(auto object, value.object());
    DSTACK_CHECK(check_keys(value, object, {"composeHashes", "devices", "allowAnyDevice", "keyEpoch"}));
    DSTACK_TRY(app.compose_hashes, hex_list(object, "composeHashes", 32));
    DSTACK_TRY(app.device, device_rule(object));
    if (auto epoch = object.optional("keyEpoch")) {
        DSTACK_TRY(auto n, epoch->uint());
        app.key_epoch = n;
    }
    return app;
}

bool contains(const std::vector<Bytes>& list, const Bytes& value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

const KmsPolicy::App* find_app(const KmsPolicy& policy, const Bytes& app_id) {
    for (const auto& app : policy.apps)
        if (app.app_id == app_id) return &app;
    return nullptr;
}

std::string quoted(std::string_view text) { return fmt::format("\"{}\"", json_escape(text)); }

std::string quoted_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (const auto& item : items) out += (out.size() > 1 ? ", " : "") + quoted(item);
    return out + "]";
}

std::string listed(std::size_t n) { return n == 0 ? "none listed" : fmt::format("{} listed", n); }

KmsAuthDecision deny(const KmsPolicy& policy, std::string_view source, std::string reason) {
    KmsAuthDecision decision;
    decision.allowed = false;
    decision.reason = fmt::format("policy {}: {}", source, reason);
    decision.gateway_app_id = policy.gateway_app_id;  // auth-simple answers it on denials too
    return decision;
}

// auth-simple's device rule: any device when allowed explicitly or when no device is listed.
std::optional<std::string> device_denial(const KmsPolicy::DeviceRule& rule, const Bytes& device_id,
                                         std::string_view where) {
    if (rule.allow_any_device || rule.devices.empty() || contains(rule.devices, device_id)) return std::nullopt;
    return fmt::format("deviceId {} is not in {}.devices ({}; allowAnyDevice is false)", hex_encode(device_id), where,
                       listed(rule.devices.size()));
}

}  // namespace

Result<KmsPolicy> parse_kms_policy(std::string_view text) {
    json::ReadLimits limits;
    limits.max_bytes = max_kms_policy_bytes;
    limits.max_depth = 8;
    DSTACK_TRY(auto document, json::read_json(text, limits));
    auto root = document.root();
    DSTACK_TRY(auto object, root.object());
    DSTACK_CHECK(check_keys(root, object, {"gatewayAppId", "kmsContractAddr", "chainId", "appImplementation", "ethRpcUrl",
                                   "osImages", "allowedTcbStatuses", "allowedAdvisoryIds", "kms", "apps"}));
    KmsPolicy policy;
    DSTACK_TRY(auto gateway, optional_string(object, "gatewayAppId"));
    if (gateway) policy.gateway_app_id = std::move(*gateway);
    DSTACK_TRY(auto contract, optional_string(object, "kmsContractAddr"));
    if (contract) policy.kms_contract_address = std::move(*contract);
    if (auto chain = object.optional("chainId")) {
        DSTACK_TRY(policy.chain_id, chain->uint());
    }
    DSTACK_TRY(auto implementation, optional_string(object, "appImplementation"));
    if (implementation) policy.app_implementation = std::move(*implementation);
    DSTACK_TRY(policy.eth_rpc_url, optional_string(object, "ethRpcUrl"));
    DSTACK_TRY(policy.os_images, hex_list(object, "osImages", 32));
    DSTACK_TRY(auto tcb, string_list(object, "allowedTcbStatuses"));
    if (tcb) policy.allowed_tcb_statuses = std::move(*tcb);
    DSTACK_TRY(auto advisories, string_list(object, "allowedAdvisoryIds"));
    if (advisories) policy.allowed_advisory_ids = std::move(*advisories);

    if (auto kms = object.optional("kms")) {
        DSTACK_TRY(auto kms_object, kms->object());
        DSTACK_CHECK(check_keys(*kms, kms_object, {"mrAggregated", "devices", "allowAnyDevice"}));
        DSTACK_TRY(policy.kms_mr_aggregated, hex_list(kms_object, "mrAggregated", 32));
        DSTACK_TRY(policy.kms_device, device_rule(kms_object));
    }

    if (auto apps = object.optional("apps")) {
        DSTACK_TRY(auto apps_object, apps->object());
        for (const auto& member : apps->raw().GetObject()) {
            std::string_view id(member.name.GetString(), member.name.GetStringLength());
            json::Value value(member.value, apps_object.member_path(id));
            DSTACK_TRY(auto app, parse_app(value, id));
            for (const auto& other : policy.apps)
                if (other.app_id == app.app_id)
                    return make_error("{}: app {} is listed twice (app ids are compared ignoring case and 0x)",
                                      apps->path(), hex_encode(app.app_id));
            policy.apps.push_back(std::move(app));
        }
    }
    return policy;
}

KmsAuthDecision evaluate_kms_policy(const KmsPolicy& policy, const BootInfo& boot, KmsAuthTarget target,
                                    std::string_view source) {
    const auto& tcb = policy.allowed_tcb_statuses;
    if (std::find(tcb.begin(), tcb.end(), boot.tcb_status) == tcb.end())
        return deny(policy, source,
                    fmt::format("tcbStatus {} is not in allowedTcbStatuses {}", quoted(boot.tcb_status), quoted_list(tcb)));
    const auto& advisories = policy.allowed_advisory_ids;
    for (const auto& advisory : boot.advisory_ids)
        if (std::find(advisories.begin(), advisories.end(), advisory) == advisories.end())
            return deny(policy, source,
                        fmt::format("advisory {} is not in allowedAdvisoryIds {}", quoted(advisory), quoted_list(advisories)));
    if (!contains(policy.os_images, boot.os_image_hash))
        return deny(policy, source,
                    fmt::format("osImageHash {} is not in osImages ({})", hex_encode(boot.os_image_hash),
                                listed(policy.os_images.size())));

    if (target == KmsAuthTarget::kms) {
        if (!contains(policy.kms_mr_aggregated, boot.mr_aggregated))
            return deny(policy, source,
                        fmt::format("mrAggregated {} is not in kms.mrAggregated ({}{})", hex_encode(boot.mr_aggregated),
                                    listed(policy.kms_mr_aggregated.size()),
                                    policy.kms_mr_aggregated.empty() ? ": no KMS may boot" : ""));
        if (auto denial = device_denial(policy.kms_device, boot.device_id, "kms")) return deny(policy, source, *denial);
    } else {
        const auto* app = find_app(policy, boot.app_id);
        if (!app)
            return deny(policy, source, fmt::format("app {} is not in apps (not registered)", hex_encode(boot.app_id)));
        std::string where = fmt::format("apps.{}", hex_encode(app->app_id));
        if (!contains(app->compose_hashes, boot.compose_hash))
            return deny(policy, source,
                        fmt::format("composeHash {} is not in {}.composeHashes ({})", hex_encode(boot.compose_hash), where,
                                    listed(app->compose_hashes.size())));
        if (auto denial = device_denial(app->device, boot.device_id, where)) return deny(policy, source, *denial);
    }

    KmsAuthDecision decision;
    decision.allowed = true;
    decision.gateway_app_id = policy.gateway_app_id;
    if (target == KmsAuthTarget::app) decision.key_epoch = find_app(policy, boot.app_id)->key_epoch;
    return decision;
}

KmsAuthInfo kms_policy_info(const KmsPolicy& policy) {
    KmsAuthInfo info;
    info.gateway_app_id = policy.gateway_app_id;
    info.kms_contract_address = policy.kms_contract_address;
    info.chain_id = policy.chain_id;
    info.app_implementation = policy.app_implementation;
    info.eth_rpc_url = policy.eth_rpc_url;
    return info;
}

}  // namespace dstack::app
