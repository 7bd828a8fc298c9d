// `dstack verify serve`: dstack-verifier's HTTP API.
#include <fmt/format.h>

#include "../applet.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {

int serve_main(std::string_view, int, char**) {
    fmt::print(stderr, "dstack verify serve: not implemented yet\n");
    return exit_usage;
}

}  // namespace dstack::applets::verify
