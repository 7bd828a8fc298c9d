// The multi-call entry point: picks the applet from the program name (busybox style:
// "verify", "dstack-verify") or from the first argument ("dstack verify ...").
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "applet-table.hpp"
#include "support/command-line.hpp"
#include "dstack/base/version.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack APPLET [ARGS...]
       APPLET [ARGS...]            (through a symlink named APPLET or dstack-APPLET)

One static binary for the whole dstack confidential-container platform.

Options:
  --list                 print the applet names, one per line
  --install DIR [--force]
                         create a symlink DIR/APPLET -> this binary for every applet
                         (--force replaces existing files of those names)
  -h, --help             show this text
  --version              show the version

Run 'dstack APPLET --help' for an applet's own options.
)";

std::string applet_names() {
    std::string names;
    for (const auto& applet : table()) {
        if (!names.empty()) names += ", ";
        names += applet.name;
    }
    return names;
}

void print_help() {
    fmt::print("{}\nApplets:\n", usage);
    for (const auto& applet : table()) fmt::print("  {:<9} {}\n", applet.name, applet.summary);
}

std::string self_path(const char* argv0) {
    std::error_code ec;
    auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) return path.string();
    return std::filesystem::absolute(argv0, ec).string();
}

int install(int argc, char** argv) {
    std::string dir;
    bool force = false;
    for (int i = 2; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--force") force = true;
        else if (dir.empty() && !arg.starts_with("-")) dir = arg;
        else {
            fmt::print(stderr, "dstack --install: unexpected argument '{}'\nusage: dstack --install DIR [--force]\n", arg);
            return exit_usage;
        }
    }
    if (dir.empty()) {
        fmt::print(stderr, "usage: dstack --install DIR [--force]\n");
        return exit_usage;
    }
    struct stat st{};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        fmt::print(stderr, "dstack --install: {} is not a directory\n", dir);
        return exit_usage;
    }
    std::string target = self_path(argv[0]);
    int failures = 0;
    for (const auto& applet : table()) {
        std::string link = (std::filesystem::path(dir) / std::string(applet.name)).string();
        struct stat existing{};
        if (::lstat(link.c_str(), &existing) == 0) {
            if (!force) {
                fmt::print(stderr, "dstack --install: {} exists (use --force to replace it)\n", link);
                ++failures;
                continue;
            }
            if (S_ISDIR(existing.st_mode) || ::unlink(link.c_str()) != 0) {
                fmt::print(stderr, "dstack --install: cannot replace {}: {}\n", link,
                           S_ISDIR(existing.st_mode) ? "it is a directory" : std::strerror(errno));
                ++failures;
                continue;
            }
        }
        if (::symlink(target.c_str(), link.c_str()) != 0) {
            fmt::print(stderr, "dstack --install: cannot create {}: {}\n", link, std::strerror(errno));
            ++failures;
            continue;
        }
        fmt::print("{} -> {}\n", link, target);
    }
    return failures == 0 ? exit_ok : exit_failure;
}

int unknown_applet(std::string_view name) {
    fmt::print(stderr, "dstack: unknown applet '{}' (applets: {})\n", name, applet_names());
    return exit_usage;
}

}  // namespace
}  // namespace dstack::applets

int main(int argc, char** argv) {
    using namespace dstack::applets;
    std::string_view program = argc > 0 ? argv[0] : "dstack";
    if (auto slash = program.rfind('/'); slash != std::string_view::npos) program.remove_prefix(slash + 1);
    if (program.starts_with("dstack-")) program.remove_prefix(7);

    if (program != "dstack") {
        if (const Applet* applet = find(program)) return applet->main(argc, argv);
        return unknown_applet(program);
    }
    if (argc < 2) {
        print_help();
        return exit_usage;
    }
    std::string_view first = argv[1];
    if (first == "--list") {
        for (const auto& applet : table()) fmt::print("{}\n", applet.name);
        return exit_ok;
    }
    if (first == "--install") return install(argc, argv);
    if (first == "--help" || first == "-h" || first == "help") {
        print_help();
        return exit_ok;
    }
    if (first == "--version") {
        fmt::print("{}\n", dstack::version_line());
        return exit_ok;
    }
    if (const Applet* applet = find(first)) return applet->main(argc - 1, argv + 1);
    return unknown_applet(first);
}
