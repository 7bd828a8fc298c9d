// applet: agent — its usage text below is also its --help.
#include "support/command-line.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack agent [OPTIONS]

The guest agent that runs inside each CVM and serves /var/run/dstack.sock
(quotes, per-app keys, RA-TLS certificates, runtime events) and the legacy
/var/run/tappd.sock.

)";

}  // namespace

int agent_main(int argc, char** argv) { return not_implemented("agent", usage, argc, argv); }

}  // namespace dstack::applets
