#include <CLI/CLI.hpp>

#include "support/command-line.hpp"

namespace dstack::applets {

int not_implemented(std::string_view name, std::string_view usage, int argc, char** argv) {
    std::string help = fmt::format("{}{}", usage, R"(Status: not implemented yet. This build only answers --help and --version;
anything else prints "not implemented yet" and exits with status 2.

Options:
  -h, --help     show this text
  --version      show the version of the dstack binary
)");
    Command command(fmt::format("dstack {}", name), help, fmt::format("dstack {} --help", name));
    command.cli().allow_extras();
    if (auto done = command.parse(argc, argv)) return *done;
    return command.fail("not implemented yet", exit_usage);
}

}  // namespace dstack::applets
