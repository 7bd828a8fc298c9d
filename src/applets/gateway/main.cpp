// applet: gateway — its usage text below is also its --help.
#include "../applet.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack gateway [OPTIONS]

The TLS gateway at the edge: ACME certificates (self-signed wildcard when
none), TLS termination or passthrough by SNI, routing to CVMs.

Status: not implemented yet. This build only answers --help and --version;
anything else prints "not implemented yet" and exits with status 2.

Options:
  -h, --help     show this text
  --version      show the version of the dstack binary
)";

}  // namespace

int gateway_main(int argc, char** argv) { return not_implemented("gateway", usage, argc, argv); }

}  // namespace dstack::applets
