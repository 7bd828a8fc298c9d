#include "support/command-line.hpp"

#include <cstdio>

#include <CLI/CLI.hpp>

#include "dstack/base/version.hpp"

namespace dstack::applets {

Command::Command(std::string name, std::string_view usage, std::string help_command)
    : name_(std::move(name)), usage_(usage), help_command_(std::move(help_command)), cli_(std::make_unique<CLI::App>(name_)) {
    cli_->set_help_flag();
    cli_->add_flag("-h,--help", help_);
    cli_->add_flag("--version", version_);
}

Command::~Command() = default;

std::optional<int> Command::parse(int argc, char** argv) {
    try {
        cli_->parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        // --help and --version win over other mistakes on the same line.
        if (help_ || version_) return parse_answer();
        return usage_error(error.what());
    }
    if (help_ || version_) return parse_answer();
    return std::nullopt;
}

int Command::parse_answer() const {
    if (help_) fmt::print("{}", usage_);
    else fmt::print("{}\n", version_line());
    return exit_ok;
}

int Command::usage_error(std::string_view message) const {
    fmt::print(stderr, "{}: {} (see {})\n", name_, message, help_command_);
    return exit_usage;
}

int Command::fail(std::string_view message, int code) const {
    fmt::print(stderr, "{}: {}\n", name_, message);
    return code;
}

int run_subcommand(std::string_view applet, std::string_view usage, std::span<const Subcommand> subcommands,
                   SubcommandMain fallback, int argc, char** argv) {
    std::string_view first = argc > 1 ? argv[1] : "";
    for (const auto& subcommand : subcommands)
        if (first == subcommand.name) return subcommand.main(usage, argc - 1, argv + 1);
    if (fallback) return fallback(usage, argc, argv);
    if (first == "-h" || first == "--help") return fmt::print("{}", usage), exit_ok;
    if (first == "--version") return fmt::print("{}\n", version_line()), exit_ok;
    std::string names;
    for (const auto& subcommand : subcommands) names += fmt::format("{}{}", names.empty() ? "" : ", ", subcommand.name);
    fmt::print(stderr, "dstack {}: {} (subcommands: {}; see dstack {} --help)\n", applet,
               first.empty() ? std::string("no subcommand given") : fmt::format("unknown subcommand '{}'", first), names, applet);
    return exit_usage;
}

}  // namespace dstack::applets
