// applet: vmm — its usage text below is also its --help.
#include "../applet.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack vmm up COMPOSE.yaml

The VM manager on TDX hosts: turns a docker-compose file into an app
compose and boots a CVM with QEMU.

Status: not implemented yet. This build only answers --help and --version;
anything else prints "not implemented yet" and exits with status 2.

Options:
  -h, --help     show this text
  --version      show the version of the dstack binary
)";

}  // namespace

int vmm_main(int argc, char** argv) { return not_implemented("vmm", usage, argc, argv); }

}  // namespace dstack::applets
