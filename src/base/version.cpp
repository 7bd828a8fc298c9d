#include "dstack/base/version.hpp"

#include <fmt/format.h>

#include "dstack_version.h"

namespace dstack {

std::string_view version() { return DSTACK_VERSION; }
std::string_view git_revision() { return DSTACK_GIT_REVISION; }
std::string version_line() { return fmt::format("dstack {} (git {})", version(), git_revision()); }

}  // namespace dstack
