// libFuzzer target: `dstack verify serve`'s POST /verify body (dstack-verifier's request JSON)
// must decode to evidence or to an error, never crash.
#include <cstdint>
#include <string_view>

#include "verify/serve-api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view body(reinterpret_cast<const char*>(data), size);
    auto request = dstack::applets::verify::parse_verification_request(body);
    if (!request) return 0;
    auto evidence = dstack::applets::verify::evidence_from_request(*request);
    (void)evidence;
    return 0;
}
