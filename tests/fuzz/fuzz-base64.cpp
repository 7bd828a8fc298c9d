// libFuzzer target: base64 decoders must never crash, and accept only canonical text.
#include <cstdlib>

#include "dstack/base/base64.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto decoded = dstack::base64_decode(text)) {
        if (dstack::base64_encode(*decoded) != text) std::abort();
    }
    if (auto decoded = dstack::base64url_decode(text)) {
        if (dstack::base64url_encode(*decoded) != text) std::abort();
    }
    return 0;
}
