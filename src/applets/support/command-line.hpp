// What every applet's command line shares: exit codes, one CLI11 set-up (--help prints the
// applet's usage text, --version the binary's version, a usage error names the problem and points
// to the right --help, exit 2), subcommands dispatched one way, and the not-implemented entry.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace CLI {
class App;
}

namespace dstack::applets {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

// One command of an applet ("dstack verify serve"): a CLI11 parser set up the one way.
class Command {
public:
    // `name` prefixes every message ("dstack verify serve"); `usage` is what --help prints;
    // `help_command` is where usage errors point ("dstack verify --help").
    Command(std::string name, std::string_view usage, std::string help_command);
    ~Command();
    Command(const Command&) = delete;
    Command& operator=(const Command&) = delete;

    CLI::App& cli() { return *cli_; }
    const std::string& name() const { return name_; }

    // Parses; answers --help, --version and parse errors. Returns the exit status when the
    // command is already done, nullopt when it should go on.
    std::optional<int> parse(int argc, char** argv);

    // "NAME: MESSAGE (see HELP_COMMAND)" on stderr; returns exit_usage.
    int usage_error(std::string_view message) const;
    // "NAME: MESSAGE" on stderr; returns `code`.
    int fail(std::string_view message, int code = exit_failure) const;

private:
    int parse_answer() const;

    std::string name_;
    std::string usage_;
    std::string help_command_;
    std::unique_ptr<CLI::App> cli_;
    bool help_ = false;
    bool version_ = false;
};

// A subcommand's entry: gets the applet's usage text and argv starting at the subcommand's name.
using SubcommandMain = int (*)(std::string_view usage, int argc, char** argv);
struct Subcommand {
    std::string_view name;
    SubcommandMain main;
};

// Runs the subcommand named by argv[1], or `fallback` (with the whole argv) when argv[1] names none
// (nullptr fallback: a usage error naming the subcommands).
int run_subcommand(std::string_view applet, std::string_view usage, std::span<const Subcommand> subcommands,
                   SubcommandMain fallback, int argc, char** argv);

// For applets whose issue has not landed: answers --help/--version, otherwise says so and exits 2.
int not_implemented(std::string_view name, std::string_view usage, int argc, char** argv);

}  // namespace dstack::applets
