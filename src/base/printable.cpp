#include "dstack/base/printable.hpp"

#include <fmt/format.h>

#include "utf8.hpp"

namespace dstack {

std::string printable_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        auto byte = static_cast<unsigned char>(text[i]);
        if (byte >= 0x20 && byte < 0x7f) {
            out += text[i++];
            continue;
        }
        std::size_t start = i;
        long code_point = byte >= 0x80 ? detail::decode_utf8(text, i) : (++i, -1);
        // C1 controls (U+0080..U+009F) can drive terminals too.
        if (code_point >= 0xa0) {
            out.append(text.substr(start, i - start));
        } else {
            for (std::size_t k = start; k < i; ++k) out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[k]));
        }
    }
    return out;
}

}  // namespace dstack
