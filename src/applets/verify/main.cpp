// applet: verify — its usage text below is also its --help.
#include "../applet.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack verify INPUT

Verifies a TDX or SGX quote (or a dstack attestation) with Intel's DCAP
collateral, replays the event log and prints one verdict.

)";

}  // namespace

int verify_main(int argc, char** argv) { return not_implemented("verify", usage, argc, argv); }

}  // namespace dstack::applets
