// Option parsing that more than one verify command shares: collateral, time, trust anchor, policy.
#include <algorithm>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "support/command-line.hpp"
#include "dstack/base/clock.hpp"

#include "verify.hpp"

namespace dstack::applets::verify {

CLI::Option* non_empty(CLI::Option* option) {
    static const CLI::Validator validator(
        [](const std::string& value) {
            return value.empty() ? std::string("must not be empty (leave the option out instead)") : std::string();
        },
        "", "NON-EMPTY");
    return option->check(validator);
}

void add_verifier_options(CLI::App& cli, VerifierArgs& args) {
    non_empty(cli.add_option("--collateral", args.collateral.file));
    non_empty(cli.add_option("--pccs", args.collateral.pccs_url));
    non_empty(cli.add_option("--cache-dir", args.collateral.cache_dir));
    non_empty(cli.add_option("--now", args.now));
    non_empty(cli.add_option("--trust-root", args.trust_root));
    non_empty(cli.add_option("--allow-status", args.allow_status)->allow_extra_args(false));
    non_empty(cli.add_option("--allow-advisory", args.allow_advisory)->allow_extra_args(false));
    cli.add_flag("--allow-debug", args.allow_debug);
}

Result<app::Policy> parse_policy(const std::vector<std::string>& allow_status, const std::vector<std::string>& allow_advisory,
                                 bool allow_debug) {
    app::Policy policy;
    for (const auto& list : allow_status) {
        if (list.find_first_not_of(", ") == std::string::npos)
            return make_error("--allow-status: '{}' names no TCB status", list);
        std::size_t start = 0;
        while (start <= list.size()) {
            auto end = list.find(',', start);
            if (end == std::string::npos) end = list.size();
            auto name = std::string_view(list).substr(start, end - start);
            start = end + 1;
            if (name.empty()) continue;
            auto status = tee::parse_tcb_status(name);
            if (!status) return make_error("--allow-status: unknown TCB status '{}'", name);
            if (*status == tee::TcbStatus::revoked) return make_error("--allow-status: Revoked can never be accepted");
            if (std::find(policy.allowed_statuses.begin(), policy.allowed_statuses.end(), *status) == policy.allowed_statuses.end())
                policy.allowed_statuses.push_back(*status);
        }
    }
    policy.allowed_advisories = allow_advisory;
    policy.allow_debug = allow_debug;
    return policy;
}

Result<UnixSeconds> parse_now(const std::string& text) {
    auto now = parse_time(text);
    if (!now) return std::move(now).take_error().context("--now");
    return now;
}

Result<app::VerifierConfig> verifier_config(const VerifierArgs& args) {
    if (args.collateral.file && args.collateral.pccs_url) return make_error("give --collateral or --pccs, not both");
    app::VerifierConfig config;
    config.collateral = args.collateral;
    DSTACK_TRY(config.policy, parse_policy(args.allow_status, args.allow_advisory, args.allow_debug));
    if (args.now) {
        DSTACK_TRY(config.now, parse_now(*args.now));
    }
    if (args.trust_root) {
        DSTACK_TRY(config.trust_anchor, read_trust_root(*args.trust_root));
    }
    return config;
}

}  // namespace dstack::applets::verify
