// libFuzzer target: the KMS policy file (auth-simple's JSON) is written by operators and may be
// replaced at any time while the KMS runs. The parser must return a policy or an error, never
// crash; a policy that parses must decide every boot, and a denial must always carry its reason.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dstack/app/kms-policy.hpp"

namespace {

dstack::app::BootInfo sample_boot(std::uint8_t fill) {
    dstack::app::BootInfo boot;
    boot.mr_aggregated = dstack::Bytes(32, fill);
    boot.os_image_hash = dstack::Bytes(32, fill);
    boot.app_id = dstack::Bytes(20, fill);
    boot.compose_hash = dstack::Bytes(32, fill);
    boot.device_id = dstack::Bytes(32, fill);
    boot.tcb_status = "UpToDate";
    return boot;
}

void check(const dstack::app::KmsPolicy& policy, const dstack::app::BootInfo& boot, dstack::app::KmsAuthTarget target) {
    auto decision = dstack::app::evaluate_kms_policy(policy, boot, target, "fuzz");
    if (decision.allowed != decision.reason.empty()) std::abort();
    if (!decision.allowed && decision.reason.rfind("policy fuzz: ", 0) != 0) std::abort();
    if (decision.gateway_app_id != policy.gateway_app_id) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto policy = dstack::app::parse_kms_policy(text);
    if (!policy) return 0;
    (void)dstack::app::kms_policy_info(*policy);
    // Zero bytes, and the first app id / os image the policy names, so that deeper rules run too.
    for (std::uint8_t fill : {std::uint8_t(0), std::uint8_t(0xff)}) {
        auto boot = sample_boot(fill);
        check(*policy, boot, dstack::app::KmsAuthTarget::app);
        check(*policy, boot, dstack::app::KmsAuthTarget::kms);
    }
    auto boot = sample_boot(0);
    if (!policy->os_images.empty()) boot.os_image_hash = policy->os_images.front();
    if (!policy->kms_mr_aggregated.empty()) boot.mr_aggregated = policy->kms_mr_aggregated.front();
    if (!policy->apps.empty()) {
        boot.app_id = policy->apps.front().app_id;
        if (!policy->apps.front().compose_hashes.empty()) boot.compose_hash = policy->apps.front().compose_hashes.front();
    }
    check(*policy, boot, dstack::app::KmsAuthTarget::app);
    check(*policy, boot, dstack::app::KmsAuthTarget::kms);
    return 0;
}
