#include "utf8.hpp"

#include <cstdint>

namespace dstack::detail {

// Decodes one UTF-8 sequence at text[i]; returns the code point and advances i, or
// returns -1 (advancing one byte) for anything that is not well-formed UTF-8.
long decode_utf8(std::string_view text, std::size_t& i) {
    auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
    std::uint8_t b0 = byte(i);
    std::size_t length;
    long cp;
    long min;
    if (b0 >= 0xc2 && b0 <= 0xdf) { length = 2; cp = b0 & 0x1f; min = 0x80; }
    else if (b0 >= 0xe0 && b0 <= 0xef) { length = 3; cp = b0 & 0x0f; min = 0x800; }
    else if (b0 >= 0xf0 && b0 <= 0xf4) { length = 4; cp = b0 & 0x07; min = 0x10000; }
    else { ++i; return -1; }
    if (i + length > text.size()) { ++i; return -1; }
    for (std::size_t k = 1; k < length; ++k) {
        std::uint8_t b = byte(i + k);
        if ((b & 0xc0) != 0x80) { ++i; return -1; }
        cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) { ++i; return -1; }
    i += length;
    return cp;
}

}  // namespace dstack::detail
