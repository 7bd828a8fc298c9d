// applet: gateway — its usage text below is also its --help.
#include "support/command-line.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack gateway [OPTIONS]

The TLS gateway at the edge: ACME certificates (self-signed wildcard when
none), TLS termination or passthrough by SNI, routing to CVMs.

)";

}  // namespace

int gateway_main(int argc, char** argv) { return not_implemented("gateway", usage, argc, argv); }

}  // namespace dstack::applets
