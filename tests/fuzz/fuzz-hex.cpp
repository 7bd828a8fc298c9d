// libFuzzer target: hex decoding must never crash, and must round-trip what it accepts.
#include <cstdlib>

#include "dstack/base/hex.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    for (auto decode : {dstack::hex_decode, dstack::hex_decode_prpc}) {
        auto decoded = decode(text);
        if (!decoded) continue;
        auto again = dstack::hex_decode(dstack::hex_encode(*decoded));
        if (!again || *again != *decoded) std::abort();
    }
    return 0;
}
