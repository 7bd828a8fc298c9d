// applet: kms — its usage text below is also its --help.
#include "../applet.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack kms [OPTIONS]

The key management service: verifies the quotes of CVMs before releasing
keys, derives per-app keys from its root keys and enforces authorization.

Status: not implemented yet. This build only answers --help and --version;
anything else prints "not implemented yet" and exits with status 2.

Options:
  -h, --help     show this text
  --version      show the version of the dstack binary
)";

}  // namespace

int kms_main(int argc, char** argv) { return not_implemented("kms", usage, argc, argv); }

}  // namespace dstack::applets
