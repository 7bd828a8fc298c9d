// applet: vmm — its usage text below is also its --help.
#include "support/command-line.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack vmm up COMPOSE.yaml

The VM manager on TDX hosts: turns a docker-compose file into an app
compose and boots a CVM with QEMU.

)";

}  // namespace

int vmm_main(int argc, char** argv) { return not_implemented("vmm", usage, argc, argv); }

}  // namespace dstack::applets
