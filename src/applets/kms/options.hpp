// The options `serve`, `bootstrap` and `onboard` share (the key directory, the guest agent, how
// quotes are verified, the authorization API), from flags and upstream's kms.toml, and the
// verifier and authorizer built from them.
#pragma once

#include <memory>

#include "dstack/app/kms-authorization.hpp"
#include "dstack/app/verifier.hpp"
#include "settings.hpp"
#include "support/command-line.hpp"
#include "support/daemon-options.hpp"

namespace dstack::applets::kms {

class ServerOptions {
public:
    ServerOptions(Command& command, Settings& settings);
    // After parsing: the config file's keys the flags left unset, then checks.
    Result<void> apply();

private:
    Settings& settings_;
    ConfigOptions config_;
    std::vector<std::string> allow_status_;
    bool no_self_authorization_ = false;
    bool no_attest_rpc_cert_ = false;
    std::string admin_token_file_;
    std::optional<std::string> auth_type_, trust_root_;
    int webhook_timeout_s_ = 10;
};

Result<std::shared_ptr<app::Verifier>> make_verifier(const Settings& settings);
Result<std::shared_ptr<app::KmsAuthorizer>> make_authorizer(const Settings& settings);

}  // namespace dstack::applets::kms
