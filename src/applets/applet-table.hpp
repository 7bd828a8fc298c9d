// The applet table: each applet's main.cpp opens with its usage text and defines one entry
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

}  // namespace dstack::applets
