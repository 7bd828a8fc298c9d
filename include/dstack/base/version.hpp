// The version every applet reports: one binary, one version.
#pragma once

#include <string>
#include <string_view>

namespace dstack {

std::string_view version();       // "0.1.0"
std::string_view git_revision();  // `git describe` of the build, or "unknown"
std::string version_line();       // "dstack 0.1.0 (git 1a2b3c4d5e6f)"

}  // namespace dstack
