// applet: gateway — its usage text below is also its --help.
#include <string_view>

#include "certbot-command.hpp"
#include "support/command-line.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack gateway [OPTIONS]

The TLS gateway at the edge: ACME certificates (self-signed wildcard when
none), TLS termination or passthrough by SNI, routing to CVMs.

)";

}  // namespace

int gateway_main(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "certbot") return gateway::gateway_certbot_main(argc - 1, argv + 1);
    return not_implemented("gateway", usage, argc, argv);
}

}  // namespace dstack::applets
