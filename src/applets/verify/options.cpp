// Option parsing that more than one verify command shares: collateral, time, trust anchor, policy.
#include <algorithm>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "support/command-line.hpp"
#include "dstack/base/version.hpp"

#include "verify.hpp"

namespace dstack::applets::verify {

std::optional<int> parse_command_line(CLI::App& cli, std::string_view usage, int argc, char** argv) {
    bool help = false, version = false;
    cli.set_help_flag();
    cli.add_flag("-h,--help", help);
    cli.add_flag("--version", version);
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        fmt::print(stderr, "{}: {} (see dstack verify --help)\n", cli.get_description(), error.what());
        return exit_usage;
    }
    if (help) {
        fmt::print("{}", usage);
        return exit_ok;
    }
    if (version) {
        fmt::print("{}\n", version_line());
        return exit_ok;
    }
    return std::nullopt;
}

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

}  // namespace dstack::applets::verify
