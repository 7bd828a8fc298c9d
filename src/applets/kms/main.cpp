// applet: kms — its usage text below is also its --help.
#include "support/command-line.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack kms [OPTIONS]

The key management service: verifies the quotes of CVMs before releasing
keys, derives per-app keys from its root keys and enforces authorization.

)";

}  // namespace

int kms_main(int argc, char** argv) { return not_implemented("kms", usage, argc, argv); }

}  // namespace dstack::applets
