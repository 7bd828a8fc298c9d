#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "applet.hpp"
#include "dstack/base/version.hpp"

namespace dstack::applets {

int not_implemented(std::string_view name, std::string_view usage, int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            fmt::print("{}{}", usage, R"(Status: not implemented yet. This build only answers --help and --version;
anything else prints "not implemented yet" and exits with status 2.

Options:
  -h, --help     show this text
  --version      show the version of the dstack binary
)");
            return exit_ok;
        }
        if (arg == "--version") {
            fmt::print("{}\n", version_line());
            return exit_ok;
        }
    }
    fmt::print(stderr, "dstack {}: not implemented yet\n", name);
    return exit_usage;
}

}  // namespace dstack::applets
