// The in-process authorizers (policy file, dev) and the fail-closed rule callers apply.
#include "dstack/app/kms-authorization.hpp"
#include "dstack/app/kms-policy-file.hpp"
#include "dstack/base/log.hpp"

namespace dstack::app {
namespace {

class PolicyAuthorizer final : public KmsAuthorizer {
public:
    explicit PolicyAuthorizer(std::unique_ptr<KmsPolicyFile> file) : file_(std::move(file)) {}

    std::string_view kind() const override { return "policy"; }

    asio::awaitable<Result<KmsAuthDecision>> check(const BootInfo& boot, KmsAuthTarget target) override {
        auto policy = file_->current();
        co_return evaluate_kms_policy(*policy, boot, target, file_->path().string());
    }

    asio::awaitable<Result<KmsAuthInfo>> info() override { co_return kms_policy_info(*file_->current()); }

private:
    std::unique_ptr<KmsPolicyFile> file_;
};

class DevAuthorizer final : public KmsAuthorizer {
public:
    explicit DevAuthorizer(std::string gateway_app_id) : gateway_app_id_(std::move(gateway_app_id)) {
        log::warn("auth_api type \"dev\": EVERY CVM that asks is given its keys, whatever it runs; "
                  "never use this outside development");
    }

    std::string_view kind() const override { return "dev"; }

    asio::awaitable<Result<KmsAuthDecision>> check(const BootInfo&, KmsAuthTarget) override {
        KmsAuthDecision decision;
        decision.allowed = true;
        decision.gateway_app_id = gateway_app_id_;
        co_return decision;
    }

    asio::awaitable<Result<KmsAuthInfo>> info() override {
        KmsAuthInfo info;
        info.gateway_app_id = gateway_app_id_;
        co_return info;
    }

private:
    std::string gateway_app_id_;
};

}  // namespace

KmsAuthDecision decision_or_denial(Result<KmsAuthDecision> checked) {
    if (checked) return std::move(*checked);
    KmsAuthDecision denial;
    denial.allowed = false;
    denial.reason = checked.error().message;
    return denial;
}

Result<std::unique_ptr<KmsAuthorizer>> make_policy_authorizer(const std::filesystem::path& path) {
    DSTACK_TRY(auto file, KmsPolicyFile::open(path));
    return std::unique_ptr<KmsAuthorizer>(new PolicyAuthorizer(std::move(file)));
}

std::unique_ptr<KmsAuthorizer> make_dev_authorizer(std::string gateway_app_id) {
    return std::make_unique<DevAuthorizer>(std::move(gateway_app_id));
}

}  // namespace dstack::app
