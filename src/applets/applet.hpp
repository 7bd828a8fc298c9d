// The applet contract: each applet's main.cpp opens with its usage text and defines one entry
// function; applet-table.cpp is the only place that lists them all.
#pragma once

#include <span>
#include <string_view>

namespace dstack::applets {

struct Applet {
    std::string_view name;
    std::string_view summary;
    int (*main)(int argc, char** argv);  // argv[0] is the applet name
};

// Sorted by name.
std::span<const Applet> table();
const Applet* find(std::string_view name);

// Exit codes shared by every applet.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

// For applets whose issue has not landed: answers --help/--version, otherwise says so and exits 2.
int not_implemented(std::string_view name, std::string_view usage, int argc, char** argv);

}  // namespace dstack::applets
